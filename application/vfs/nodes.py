"""The VFS's in-memory tree: one `Node` per file or directory it has seen.

Inode numbers are handed out once per path and kept for the mount's life, so the
kernel sees a stable number even after a listing is refreshed or forgotten.
"""

from __future__ import annotations

import asyncio
import stat
from dataclasses import dataclass

from domain.volume import VfsOptions

ROOT_INODE = 1
BLOCK_SIZE = 512  # st_blocks counts 512-byte units whatever the real block size


@dataclass(frozen=True, slots=True)
class NodeAttr:
    """What `stat` shows for one node."""

    inode: int
    is_dir: bool
    mode: int
    size: int
    mtime: float
    uid: int
    gid: int
    nlink: int
    blocks: int


class Node:
    """A file or directory. Directories carry their cached listing."""

    def __init__(
        self, inode: int, path: str, is_dir: bool, size: int, mtime: float, parent: Node | None
    ) -> None:
        self.inode = inode
        self.parent = parent
        self.path = path
        self.is_dir = is_dir
        self.size = size
        self.mtime = mtime
        # Directories: the cached listing by name, and the clock time it was read.
        self.children: dict[str, Node] | None = None
        self.listed_at: float | None = None
        self.list_lock = asyncio.Lock()
        # Files: False while a file created through the VFS is not yet on the remote.
        self.on_remote = True
        self.writers = 0
        # Uncached commits in progress (at a flush, or a release never flushed):
        # opens, lookups, renames and unlinks of the node wait for them.
        self.committing = 0
        self.unlinked = False
        self.upload_settled: asyncio.Event | None = None  # set at each commit's end

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    def attr(self, options: VfsOptions) -> NodeAttr:
        # rclone's rule: the permission flags with the umask bits cleared.
        if self.is_dir:
            mode = stat.S_IFDIR | (options.dir_perms & ~options.umask & 0o7777)
        else:
            mode = stat.S_IFREG | (options.file_perms & ~options.umask & 0o7777)
        return NodeAttr(
            inode=self.inode,
            is_dir=self.is_dir,
            mode=mode,
            size=self.size,
            mtime=self.mtime,
            uid=options.uid,
            gid=options.gid,
            nlink=1,  # like rclone: counting subdirectories would need a listing per stat
            blocks=(self.size + BLOCK_SIZE - 1) // BLOCK_SIZE,
        )
