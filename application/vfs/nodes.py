"""The VFS's in-memory tree: one `Node` per file or directory it has seen.

Inode numbers are handed out once per path and kept for the mount's life, so the
kernel sees a stable number even after a listing is refreshed or forgotten.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from domain.links import link_file_name
from domain.metadata import FileMetadata
from domain.remote_entry import RemoteEntry
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
    is_link: bool = False
    atime: float | None = None  # None: the same as mtime


# How long an operation waits for an uncached upload of its file to land.
WAIT_FOR_UPLOAD = 5.0


class LocalCopy(Protocol):
    """A file's copy in the VFS cache, whose size and time win while it holds
    changes the remote does not have."""

    @property
    def size(self) -> int: ...

    @property
    def mtime(self) -> float: ...

    @property
    def holds_local_changes(self) -> bool: ...

    @property
    def removed(self) -> bool: ...


class Writer(Protocol):
    """An uncached upload of a file (`application.vfs.handles.WriteHandle`)."""

    @property
    def in_progress(self) -> bool: ...

    @property
    def upload_started(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    pending_mtime: float | None

    async def truncate(self, size: int) -> None: ...


class Node:
    """A file or directory. Directories carry their cached listing.

    A file knows its uncached writers and the commits they have in progress,
    and lets operations wait for those to land. Its size and time are its
    cache copy's while that holds local changes."""

    def __init__(
        self, inode: int, path: str, is_dir: bool, size: int, mtime: float, parent: Node | None
    ) -> None:
        self.inode = inode
        self.parent = parent
        self.path = path
        self.is_dir = is_dir
        self._size = size
        self._mtime = mtime
        self.local: LocalCopy | None = None
        # Directories: the cached listing by name, and the clock time it was read.
        self.children: dict[str, Node] | None = None
        self.listed_at: float | None = None
        self.list_lock = asyncio.Lock()
        # Files: False while a file created through the VFS is not yet on the remote.
        self.on_remote = True
        self.unlinked = False
        # Symlinks (--links): stored as `<path>.rclonelink`; the target once read.
        self.is_link = False
        self.link_target: str | None = None
        # --metadata: mode, owner and access time as the remote (or a chmod,
        # chown or utimensat made here) has them; mtime is the node's own.
        self.meta = FileMetadata()
        self.meta_dirty = False  # changed here, not on the remote yet
        self.mtime_pinned = False  # a directory's time set by utimensat (--metadata)
        self.meta_known = False  # the remote's answer seen (S3 listings have none)
        self.nlink = 1
        # Hard links made through this mount: the nodes sharing this one's
        # inode number (one list, shared by all of them).
        self.names: list[Node] = [self]
        # --vfs-metadata-extension: a virtual file's content, and a file's
        # virtual metadata file once looked up (its inode number stays).
        self.virtual_content: bytes | None = None
        self.metadata_file: Node | None = None
        self._writers: list[Writer] = []
        # Uncached commits in progress (at a flush, or a release never flushed):
        # opens, lookups, renames and unlinks of the node wait for them.
        self._committing = 0
        self._settled: asyncio.Event | None = None  # set at each commit's end

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def remote_path(self) -> str:
        """Where the node is on the remote: a link is its `.rclonelink` file."""
        return link_file_name(self.path) if self.is_link else self.path

    def take_remote_details(self, entry: RemoteEntry) -> None:
        """Link flag, metadata and link count from a fresh listing or stat
        (size and time are the caller's: local changes may know better)."""
        if self.is_link and (entry.size != self._size or entry.mtime != self._mtime):
            self.link_target = None  # changed on the remote: read it again
        self.is_link = entry.is_link
        if entry.metadata is not None and not self.meta_dirty:
            self.meta = entry.metadata
            self.meta_known = True
        self.nlink = entry.nlink

    def add_name(self, other: Node) -> None:
        """`other` is a new hard link to this node: it takes the same inode."""
        other.inode = self.inode
        other.names = self.names
        self.names.append(other)
        for node in self.names:
            node.nlink = max(node.nlink + 1, len(self.names))

    def drop_name(self) -> Node | None:
        """This name went (unlink, or replaced by a rename): the other name
        that answers to the inode from now on, if any."""
        others = self.names
        if len(others) == 1:
            return None
        others.remove(self)
        for node in others:
            node.nlink = max(1, node.nlink - 1)
        self.names = [self]
        return others[0]

    # ----- size and time ------------------------------------------------------------

    def _local_changes(self) -> LocalCopy | None:
        local = self.local
        if local is not None and not local.removed and local.holds_local_changes:
            return local
        return None

    @property
    def size(self) -> int:
        local = self._local_changes()
        return local.size if local is not None else self._size

    @size.setter
    def size(self, size: int) -> None:
        self._size = size

    @property
    def mtime(self) -> float:
        local = self._local_changes()
        return local.mtime if local is not None else self._mtime

    @mtime.setter
    def mtime(self, mtime: float) -> None:
        self._mtime = mtime

    def follow(self, local: LocalCopy) -> None:
        """Take size and time from `local` while it holds local changes; from
        now on, what it last had is the node's own."""
        self.local = local
        self._size, self._mtime = local.size, local.mtime

    def settle_local(self) -> None:
        """The local copy's changes reached the remote: keep what it had."""
        if self.local is not None:
            self._size, self._mtime = self.local.size, self.local.mtime

    # ----- uncached writers and their commits -------------------------------------

    @property
    def writers(self) -> int:
        return len(self._writers)

    def add_writer(self, writer: Writer) -> None:
        self._writers.append(writer)

    def remove_writer(self, writer: Writer) -> None:
        self._writers.remove(writer)
        self._wake()

    def pending_writers(self) -> list[Writer]:
        """Writers holding something the remote does not reflect yet."""
        return [w for w in self._writers if w.in_progress]

    def uploading(self) -> bool:
        """An uncached upload is under way, to the name given at its first write."""
        return any(w.upload_started and not w.closed for w in self._writers)

    @contextmanager
    def committing(self) -> Iterator[None]:
        self._committing += 1
        try:
            yield
        finally:
            self._committing -= 1
            self._wake()

    async def commits_landed(self) -> bool:
        """Wait for the commits in progress; False if some still run after
        `WAIT_FOR_UPLOAD` seconds."""
        return await self._wait_while(lambda: self._committing > 0)

    async def uploads_landed(self) -> bool:
        """Wait while the file is written or committed (uncached)."""
        return await self._wait_while(lambda: bool(self._writers) or self._committing > 0)

    def _wake(self) -> None:
        """Wake the waiters (they check the counters again)."""
        if self._settled is not None:
            self._settled.set()

    async def _wait_while(self, busy: Callable[[], bool]) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_UPLOAD
        while busy():
            if self._settled is None or self._settled.is_set():
                # One set by an earlier upload says nothing about the one in progress.
                self._settled = asyncio.Event()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._settled.wait(), left)
            except TimeoutError:
                return not busy()
        return True

    def attr(self, options: VfsOptions) -> NodeAttr:
        # rclone's rule: the permission flags with the umask bits cleared.
        if self.is_link:
            # Not through the umask: a Linux symlink is 0777 whatever the umask,
            # and tools that compare modes (rsync -a) expect that.
            mode = stat.S_IFLNK | (options.link_perms & 0o7777)
        elif self.is_dir:
            mode = stat.S_IFDIR | (options.dir_perms & ~options.umask & 0o7777)
        else:
            mode = stat.S_IFREG | (options.file_perms & ~options.umask & 0o7777)
        uid, gid, atime = options.uid, options.gid, None
        if self.virtual_content is not None:
            mode = stat.S_IFREG | (0o444 & ~options.umask)
        elif options.metadata:
            # What the remote keeps wins; a link's own bits are its link-perms.
            meta = self.meta
            if meta.mode is not None and not self.is_link:
                mode = stat.S_IFMT(mode) | meta.mode
            uid = meta.uid if meta.uid is not None else uid
            gid = meta.gid if meta.gid is not None else gid
            atime = meta.atime
        return NodeAttr(
            inode=self.inode,
            is_dir=self.is_dir,
            mode=mode,
            size=self.size,
            mtime=self.mtime,
            uid=uid,
            gid=gid,
            # Like rclone, directories count 1 (subdirectories would need a
            # listing per stat); files count the server's hard links.
            nlink=self.nlink if not self.is_dir else 1,
            blocks=(self.size + BLOCK_SIZE - 1) // BLOCK_SIZE,
            is_link=self.is_link,
            atime=atime,
        )
