"""Symlinks as `.rclonelink` files (`--links`): making one writes its target as
the file's content; reading one reads it back (and keeps it on the node until a
listing shows the file changed)."""

from __future__ import annotations

import errno
import time

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.nodes import Node
from application.vfs.tree import DirectoryTree
from domain.links import TARGET_MAX, decode_target, encode_target, link_file_name
from domain.paths import join
from domain.posix_names import check_name_length
from domain.volume import VfsOptions


class Symlinks:
    def __init__(self, storage: RemoteStorage, options: VfsOptions, tree: DirectoryTree) -> None:
        self._storage = storage
        self._options = options
        self._tree = tree

    async def create(self, parent: Node, name: str, target: str) -> Node:
        """The link `name` in `parent` (not there yet) pointing at `target`."""
        path = join(parent.path, name)
        if not self._options.links:
            # rclone 1.75's words and errno (vfs.CreateSymlink).
            logger.error("symlink {!r}: symlinks not supported without the --links flag", path)
            raise OSError(errno.ENOSYS, "symlinks not supported without --links")
        check_name_length(name, link_file_name(name))
        content = encode_target(target)
        if not content or len(content) > TARGET_MAX:
            raise OSError(errno.ENAMETOOLONG if content else errno.ENOENT, "bad link target")
        upload = await self._storage.open_writer(link_file_name(path))
        try:
            await upload.write(content)
            await upload.commit()
        except BaseException:
            await upload.abort()
            raise
        node = self._tree.new_node(parent, name, False, len(content), time.time())
        node.is_link = True
        node.link_target = target
        self._tree.attach(parent, node)
        return node

    async def target(self, node: Node) -> str:
        if not node.is_link:
            raise OSError(errno.EINVAL, f"{node.path!r} is not a symlink")
        if node.link_target is None:
            reader = await self._storage.open_reader(node.remote_path)
            try:
                content = await reader.read(0, TARGET_MAX + 1)
            finally:
                await reader.close()
            node.link_target = decode_target(content)
        return node.link_target
