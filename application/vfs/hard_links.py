"""Hard links: made on the server where it can (SFTP with hardlink@openssh.com),
else EPERM, as a file system without hard links answers. Both names then show
the same inode while the mount lasts."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

from loguru import logger

from application.ports import RemoteStorage, SupportsHardLinks
from application.vfs.cache.null import FileCache
from application.vfs.metadata import MetadataKeeper
from application.vfs.nodes import Node
from application.vfs.tree import DirectoryTree
from domain.links import link_file_name
from domain.paths import join
from domain.posix_names import check_name_length


class HardLinks:
    def __init__(
        self,
        storage: RemoteStorage,
        cache: FileCache,
        tree: DirectoryTree,
        metadata: MetadataKeeper,
        settle_commit: Callable[[Node], Awaitable[None]],
    ) -> None:
        self._server = storage if isinstance(storage, SupportsHardLinks) else None
        self._said_unsupported = False
        self._cache = cache
        self._tree = tree
        self._metadata = metadata
        self._settle_commit = settle_commit

    async def link(self, node: Node, parent: Node, new_name: str) -> Node:
        """A new name for `node` in `parent`; the node that answers to it."""
        check_name_length(new_name, link_file_name(new_name) if node.is_link else None)
        if node.is_dir:
            raise OSError(errno.EPERM, f"{node.path!r} is a directory")
        if self._tree.find(await self._tree.listing(parent), new_name) is not None:
            raise OSError(errno.EEXIST, f"{join(parent.path, new_name)!r} exists")
        if self._server is None or not await self._server.hard_links_supported():
            if not self._said_unsupported:
                self._said_unsupported = True
                logger.info("link: this remote cannot make hard links (EPERM)")
            raise OSError(errno.EPERM, "hard links are not supported by this remote")
        await self._upload_now(node)
        new_path = join(parent.path, new_name)
        await self._server.hard_link(
            node.remote_path, link_file_name(new_path) if node.is_link else new_path
        )
        alias = self._tree.new_node(parent, new_name, False, node.size, node.mtime)
        alias.is_link, alias.link_target = node.is_link, node.link_target
        alias.meta = node.meta
        # The kernel expects the inode it linked: the new name answers to it too.
        node.add_name(alias)
        self._tree.attach(parent, alias)
        self._metadata.touched(parent)
        return alias

    async def _upload_now(self, node: Node) -> None:
        """Put the file's pending changes on the remote first: a hard link is
        made there, to what the remote holds."""
        await self._settle_commit(node)
        if node.pending_writers() or (not node.on_remote and self._cache.item(node.path) is None):
            raise OSError(errno.EBUSY, f"{node.path!r} is being written")
        if self._cache.holds_local_changes(node.path) or not node.on_remote:
            await self._cache.upload_now(node.path)
        if not node.on_remote:
            raise OSError(errno.EIO, f"{node.path!r} could not be uploaded")
