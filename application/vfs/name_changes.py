"""rmdir, unlink and rename: the remote changes first, then the directory tree,
the file cache (whose pending uploads follow a renamed file) and the names of
hard links. Entry checks (a writable mount, name lengths) are `Vfs`'s."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.cache.null import FileCache
from application.vfs.metadata import MetadataKeeper
from application.vfs.nodes import Node
from application.vfs.tree import DirectoryTree
from domain.links import link_file_name
from domain.paths import join
from domain.posix_names import check_name_length


class NameChanges:
    def __init__(
        self,
        storage: RemoteStorage,
        cache: FileCache,
        tree: DirectoryTree,
        metadata: MetadataKeeper,
        settle_commit: Callable[[Node], Awaitable[None]],
    ) -> None:
        self._storage = storage
        self._cache = cache
        self._tree = tree
        self._metadata = metadata
        self._settle_commit = settle_commit

    async def rmdir(self, parent: Node, name: str) -> None:
        node = await self._tree.child(parent, name)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
        if node.children and any(not c.on_remote for c in node.children.values()):
            raise OSError(errno.ENOTEMPTY, f"{node.path!r} holds files being written")
        await self._storage.rmdir(node.path)
        if node.parent is not None:
            self._metadata.touched(node.parent)
        self._tree.detach(node)

    async def unlink(self, parent: Node, name: str) -> None:
        node = await self._tree.child(parent, name)
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        if node.is_link:
            await self._storage.remove(node.remote_path)
            self._gone(node)
            return
        await self._settle_commit(node)
        await self._cache.remove(node.path)  # its upload stops first
        if node.on_remote:
            try:
                await self._storage.remove(node.path)
            except FileNotFoundError:
                if node.writers == 0:
                    raise
        # An upload still running for it is aborted at its close, not committed.
        self._gone(node)

    async def rename(
        self, old_parent: Node, old_name: str, new_parent: Node, new_name: str, *, no_replace: bool
    ) -> None:
        src = await self._tree.child(old_parent, old_name)
        check_name_length(new_name, link_file_name(new_name) if src.is_link else None)
        await self._settle_commit(src)
        new_path = join(new_parent.path, new_name)
        dst = (await self._tree.listing(new_parent)).get(new_name)
        if dst is src:
            return
        if dst is not None:
            await self._settle_commit(dst)  # a late commit would bring it back
        if src.is_dir and (new_parent is src or new_parent.path.startswith(src.path + "/")):
            raise OSError(errno.EINVAL, f"can't move {src.path!r} inside itself")
        if dst is not None:
            if no_replace:
                raise OSError(errno.EEXIST, f"{new_path!r} exists")
            if src.is_dir and not dst.is_dir:
                raise OSError(errno.ENOTDIR, f"{new_path!r} is not a directory")
            if not src.is_dir and dst.is_dir:
                raise OSError(errno.EISDIR, f"{new_path!r} is a directory")
            if dst.is_dir:
                await self._storage.rmdir(dst.path)  # ENOTEMPTY when it holds anything
            elif dst.is_link != src.is_link:
                # A link and a file are stored under different names: the
                # rename would not replace the other one.
                await self.unlink(new_parent, new_name)
                dst = None
        if src.is_link:
            # The remote replaces a link there.
            await self._storage.rename(src.remote_path, link_file_name(new_path))
        else:
            await self._rename_file_or_directory(src, dst, new_path)
        if dst is not None:
            self._gone(dst)
        self._directories_changed(src, new_parent)
        self._tree.move(src, new_parent, new_path)

    async def _rename_file_or_directory(self, src: Node, dst: Node | None, new_path: str) -> None:
        if not src.on_remote and src.uploading():
            # An uncached write uploads to the name given at the first write.
            logger.error("{}: can't rename a file while it is being uploaded", src.path)
            raise OSError(errno.EBUSY, "file is being uploaded")
        # Pending uploads stop, then go to the new name once the cache moved.
        await self._cache.pause_uploads(src.path)
        try:
            if src.on_remote:
                await self._storage.rename(src.path, new_path)
            elif dst is not None and not dst.is_dir and dst.on_remote:
                # The replaced file goes now; the source reaches the remote under
                # this name when its upload runs.
                await self._storage.remove(dst.path)
        except BaseException:
            self._cache.resume_uploads(src.path)
            raise
        await self._cache.rename(src.path, new_path)

    def _directories_changed(self, moved: Node, new_parent: Node) -> None:
        """A rename changed both directories' times on the server."""
        self._metadata.touched(new_parent)
        if moved.parent is not None:
            self._metadata.touched(moved.parent)

    def _gone(self, node: Node) -> None:
        """`node` was unlinked or replaced: out of the tree, and another hard link
        of it, if any, now answers to its inode."""
        node.unlinked = True
        if node.parent is not None:
            self._metadata.touched(node.parent)
        survivor = node.drop_name()
        if survivor is not None:
            self._tree.rebind(survivor)
        self._tree.detach(node)
