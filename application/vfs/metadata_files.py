"""`--vfs-metadata-extension` (rclone 1.75): for each file `f`, a read-only
virtual file `f<ext>` (e.g. `f.metadata`) holding f's metadata as JSON, in
rclone's keys (mode, uid, gid, atime, mtime: what stat shows for f).

As in rclone, the virtual files are not listed: they are found by name. Each
lookup reads the file's metadata afresh.
"""

from __future__ import annotations

import errno
import os
import stat

from application.vfs.metadata import MetadataKeeper
from application.vfs.nodes import Node
from application.vfs.tree import DirectoryTree
from domain.metadata import FileMetadata, metadata_json
from domain.volume import VfsOptions


class MetadataFiles:
    def __init__(self, options: VfsOptions, tree: DirectoryTree, keeper: MetadataKeeper) -> None:
        self._options = options
        self._tree = tree
        self._keeper = keeper

    def _real_name(self, name: str) -> str | None:
        ext = self._options.metadata_extension
        if not ext or not name.endswith(ext) or len(name) == len(ext):
            return None
        return name[: -len(ext)]

    async def lookup(self, parent: Node, name: str) -> Node | None:
        """The virtual file `name` in `parent`, or None if it names none."""
        real_name = self._real_name(name)
        if real_name is None:
            return None
        real = self._tree.find(await self._tree.listing(parent), real_name)
        if real is None:
            return None
        await self._keeper.learn(real)
        attr = real.attr(self._options)
        content = metadata_json(
            FileMetadata(
                mode=stat.S_IMODE(attr.mode),
                uid=attr.uid,
                gid=attr.gid,
                atime=attr.atime if attr.atime is not None else attr.mtime,
                mtime=attr.mtime,
            )
        )
        virtual = real.metadata_file
        if virtual is None or virtual.parent is not parent or virtual.name != name:
            # Not attached to the listing: found by name only, as in rclone.
            virtual = self._tree.new_node(parent, name, False, 0, attr.mtime)
            real.metadata_file = virtual
        virtual.virtual_content = content
        virtual.size, virtual.mtime = len(content), attr.mtime
        return virtual


class BytesHandle:
    """A read-only open of a virtual file."""

    def __init__(self, node: Node, flags: int) -> None:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise OSError(errno.EACCES, f"{node.path!r} is read-only")
        assert node.virtual_content is not None
        self._node = node
        self._content = node.virtual_content

    @property
    def node(self) -> Node:
        return self._node

    async def read(self, offset: int, size: int) -> bytes:
        return self._content[offset : offset + size]

    async def write(self, offset: int, data: bytes) -> int:
        raise OSError(errno.EBADF, "opened read-only")

    async def ftruncate(self, size: int) -> bool:
        raise OSError(errno.EACCES, f"{self._node.path!r} is read-only")

    async def flush(self) -> None:
        pass

    async def fsync(self) -> None:
        pass

    async def release(self) -> None:
        pass
