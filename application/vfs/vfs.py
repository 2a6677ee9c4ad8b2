"""The VFS engine: a file-system view of a `RemoteStorage`, driven by inode numbers.

It follows rclone's VFS in cache mode off: a directory cache whose listings stay
fresh for `dir_cache_time` and are patched in place by changes made through the
VFS, streaming read handles, and sequential write handles that upload as they go.
Every public method raises only `OSError` with an errno, ready for a FUSE reply.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from loguru import logger

from application.ports import RemoteStorage
from application.vfs.handles import ReadHandle, WriteHandle
from application.vfs.nodes import ROOT_INODE, Node, NodeAttr
from domain.errors import OptionError, RemoteUnavailable
from domain.paths import UnsafePath, join
from domain.volume import UNLIMITED, CacheMode, VfsOptions

P = ParamSpec("P")
T = TypeVar("T")

Handle = ReadHandle | WriteHandle

# rclone's mount reports 1 PiB and a billion inodes when the remote says nothing.
_STATFS_BLOCK = 4096
_DEFAULT_TOTAL = 1 << 50
_DEFAULT_FILES = 1_000_000_000
_NAME_MAX = 255
_WAIT_FOR_UPLOAD = 5.0  # how long a read open waits for a file still being written


@dataclass(frozen=True, slots=True)
class FsStats:
    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int
    files: int
    files_free: int
    name_max: int


def _errno_boundary(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every failure into an OSError with an errno, logging the ones the
    caller cannot explain (an unreachable remote, a bug)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except OSError as exc:
            if not exc.errno:
                logger.error("{}: {!r}", fn.__name__, exc)
                raise OSError(errno.EIO, str(exc)) from exc
            raise
        except RemoteUnavailable as exc:
            logger.error("{}: remote unavailable: {}", fn.__name__, exc)
            raise OSError(errno.EIO, f"remote unavailable: {exc}") from exc
        except UnsafePath as exc:
            raise OSError(errno.EINVAL, str(exc)) from exc
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            logger.exception("{}: unexpected error", fn.__name__)
            raise OSError(errno.EIO, f"{type(exc).__name__}: {exc}") from exc

    return wrapper


class Vfs:
    """The VFS over one remote. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        storage: RemoteStorage,
        options: VfsOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.cache_mode is not CacheMode.OFF:
            # The on-disk cache modes are not built yet; refusing beats pretending.
            raise OptionError(
                f"vfs-cache-mode {options.cache_mode.value} is not supported yet (only off)"
            )
        self._storage = storage
        self.options = options
        self._clock = clock
        self._started = time.time()
        root = Node(ROOT_INODE, "", True, 0, self._started, None)
        self._nodes: dict[int, Node] = {ROOT_INODE: root}
        self._next_inode = ROOT_INODE + 1
        self._handles: dict[int, Handle] = {}
        self._dir_handles: dict[int, list[tuple[str, Node]]] = {}
        self._next_fh = 1

    # ----- tree and directory cache -------------------------------------------------

    @property
    def root_inode(self) -> int:
        return ROOT_INODE

    def forget_all(self) -> None:
        """Mark every cached listing stale (SIGHUP). Nodes, and so inode numbers,
        stay: the next listing reuses them by name."""
        for node in self._nodes.values():
            node.listed_at = None

    def _node(self, inode: int) -> Node:
        try:
            return self._nodes[inode]
        except KeyError:
            raise OSError(errno.ENOENT, f"unknown inode {inode}") from None

    def _dir(self, inode: int) -> Node:
        node = self._node(inode)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
        return node

    def _fresh(self, d: Node) -> bool:
        return (
            d.children is not None
            and d.listed_at is not None
            and self._clock() - d.listed_at < self.options.dir_cache_time
        )

    def _new_node(self, parent: Node, name: str, is_dir: bool, size: int, mtime: float) -> Node:
        if is_dir and mtime <= 0:
            mtime = self._started  # remotes without directory times
        node = Node(self._next_inode, join(parent.path, name), is_dir, size, mtime, parent)
        self._next_inode += 1
        self._nodes[node.inode] = node
        return node

    async def _listing(self, d: Node) -> dict[str, Node]:
        if self._fresh(d):
            assert d.children is not None
            return d.children
        async with d.list_lock:
            if self._fresh(d):
                assert d.children is not None
                return d.children
            entries = await self._storage.list_dir(d.path)
            old = d.children or {}
            new: dict[str, Node] = {}
            for entry in entries:
                name = entry.name
                if name in ("", ".", "..") or "/" in name or "\0" in name:
                    logger.warning("{!r}: skipping unusable name {!r}", d.path, name)
                    continue
                child = old.get(name)
                if child is not None and child.is_dir == entry.is_dir:
                    if child.writers == 0:  # an upload in progress knows better
                        child.size = entry.size
                        if entry.mtime > 0 or not child.is_dir:
                            child.mtime = entry.mtime
                        child.on_remote = True
                else:
                    child = self._new_node(d, name, entry.is_dir, entry.size, entry.mtime)
                new[name] = child
            for name, child in old.items():
                # Files created through the VFS and not uploaded yet are not at the
                # remote, but they exist for the user.
                if name not in new and (not child.on_remote or child.writers > 0):
                    new[name] = child
            d.children = new
            d.listed_at = self._clock()
            return new

    def _find(self, children: dict[str, Node], name: str) -> Node | None:
        node = children.get(name)
        if node is None and self.options.case_insensitive:
            folded = name.casefold()
            matches = [c for n, c in children.items() if n.casefold() == folded]
            if len(matches) == 1:
                node = matches[0]
        return node

    async def _child(self, parent: Node, name: str) -> Node:
        node = self._find(await self._listing(parent), name)
        if node is None:
            raise OSError(errno.ENOENT, f"{join(parent.path, name)!r} not found")
        return node

    @staticmethod
    def _attach(parent: Node, node: Node) -> None:
        if parent.children is None:
            parent.children = {}
        parent.children[node.name] = node
        node.parent = parent

    @staticmethod
    def _detach(node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.children is not None:
            if parent.children.get(node.name) is node:
                del parent.children[node.name]

    def _need_writable(self, what: str) -> None:
        if self.options.read_only:
            raise OSError(errno.EROFS, f"{what}: read-only file system")

    # ----- metadata operations ------------------------------------------------------

    @_errno_boundary
    async def lookup(self, parent_inode: int, name: str) -> NodeAttr:
        parent = self._dir(parent_inode)
        if name == ".":
            return parent.attr(self.options)
        if name == "..":
            return (parent.parent or parent).attr(self.options)
        return (await self._child(parent, name)).attr(self.options)

    @_errno_boundary
    async def getattr(self, inode: int) -> NodeAttr:
        return self._node(inode).attr(self.options)

    @_errno_boundary
    async def resolve(self, path: str) -> NodeAttr:
        """The attributes of `path` (relative to the root), looked up name by name."""
        node = self._nodes[ROOT_INODE]
        for name in (p for p in path.split("/") if p):
            if not node.is_dir:
                raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
            node = await self._child(node, name)
        return node.attr(self.options)

    @_errno_boundary
    async def setattr(
        self,
        inode: int,
        *,
        size: int | None = None,
        mtime: float | None = None,
        fh: int | None = None,
        mode_change: bool = False,
    ) -> NodeAttr:
        """Truncate and set times. Mode and owner changes are accepted and
        ignored, as rclone does: permissions come from the mount's options."""
        node = self._node(inode)
        if size is not None or mtime is not None or mode_change:
            self._need_writable("setattr")
        if size is not None:
            await self._truncate(node, size, self._handles.get(fh) if fh is not None else None)
        if mtime is not None and not self.options.no_modtime:
            await self._set_mtime(node, mtime)
        return node.attr(self.options)

    async def _truncate(self, node: Node, size: int, handle: Handle | None) -> None:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        writers = [
            h for h in self._handles.values() if isinstance(h, WriteHandle) and h.node is node
        ]
        if isinstance(handle, WriteHandle) and handle.node is node:
            writers = [handle]
        live = [h for h in writers if not h.closed]
        if live:
            for h in live:
                await h.truncate(size)
            return
        if node.size == size:
            return
        if size != 0:
            logger.error(
                "{}: can't truncate to {} bytes with --vfs-cache-mode off (only to 0)",
                node.path,
                size,
            )
            raise OSError(errno.EPERM, "truncate to a non-zero size needs a cache mode")
        writer = await self._storage.open_writer(node.path)
        try:
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        node.size = 0
        node.mtime = time.time()
        node.on_remote = True

    async def _set_mtime(self, node: Node, mtime: float) -> None:
        pending = [
            h
            for h in self._handles.values()
            if isinstance(h, WriteHandle) and h.node is node and not h.closed
        ]
        if pending:
            for h in pending:
                h.pending_mtime = mtime  # applied once the upload is committed
        elif not node.is_dir and node.on_remote:
            await self._storage.set_mtime(node.path, mtime)
        # Directories keep their time in memory only, as in rclone.
        node.mtime = mtime

    async def _apply_mtime(self, node: Node, mtime: float) -> None:
        if self.options.no_modtime:
            return
        try:
            await self._storage.set_mtime(node.path, mtime)
            node.mtime = mtime
        except OSError as exc:
            logger.warning("{}: could not set the modification time: {!r}", node.path, exc)

    @_errno_boundary
    async def opendir(self, inode: int) -> int:
        """A directory handle holding a snapshot of the listing, so that readdir
        offsets stay valid however the directory changes meanwhile."""
        d = self._dir(inode)
        entries = list((await self._listing(d)).items())
        fh = self._next_fh
        self._next_fh += 1
        self._dir_handles[fh] = entries
        return fh

    @_errno_boundary
    async def readdir(self, fh: int, start: int) -> list[tuple[str, NodeAttr]]:
        """Entries from index `start` of the snapshot; the entry at index i is
        resumed with start = i + 1."""
        try:
            entries = self._dir_handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown directory handle {fh}") from None
        return [(name, node.attr(self.options)) for name, node in entries[start:]]

    async def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)

    @_errno_boundary
    async def mkdir(self, parent_inode: int, name: str) -> NodeAttr:
        self._need_writable("mkdir")
        parent = self._dir(parent_inode)
        path = join(parent.path, name)
        if self._find(await self._listing(parent), name) is not None:
            raise OSError(errno.EEXIST, f"{path!r} exists")
        await self._storage.mkdir(path)
        node = self._new_node(parent, name, True, 0, time.time())
        node.children = {}  # known empty: no need to list it
        node.listed_at = self._clock()
        self._attach(parent, node)
        return node.attr(self.options)

    @_errno_boundary
    async def rmdir(self, parent_inode: int, name: str) -> None:
        self._need_writable("rmdir")
        node = await self._child(self._dir(parent_inode), name)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, f"{node.path!r} is not a directory")
        if node.children and any(not c.on_remote for c in node.children.values()):
            raise OSError(errno.ENOTEMPTY, f"{node.path!r} holds files being written")
        await self._storage.rmdir(node.path)
        self._detach(node)

    @_errno_boundary
    async def unlink(self, parent_inode: int, name: str) -> None:
        self._need_writable("unlink")
        node = await self._child(self._dir(parent_inode), name)
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        if node.on_remote:
            try:
                await self._storage.remove(node.path)
            except FileNotFoundError:
                if node.writers == 0:
                    raise
        # An upload still running for it is aborted at its close, not committed.
        node.unlinked = True
        self._detach(node)

    @_errno_boundary
    async def rename(
        self,
        old_parent: int,
        old_name: str,
        new_parent: int,
        new_name: str,
        *,
        no_replace: bool = False,
        exchange: bool = False,
    ) -> None:
        self._need_writable("rename")
        if exchange:
            raise OSError(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        src = await self._child(self._dir(old_parent), old_name)
        dst_dir = self._dir(new_parent)
        new_path = join(dst_dir.path, new_name)
        dst = (await self._listing(dst_dir)).get(new_name)
        if dst is src:
            return
        if src.is_dir and (dst_dir is src or dst_dir.path.startswith(src.path + "/")):
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
        if src.on_remote:
            await self._storage.rename(src.path, new_path)
        elif any(
            isinstance(h, WriteHandle) and h.node is src and h.upload_started
            for h in self._handles.values()
        ):
            # Cache mode off uploads to the name given at the first write.
            logger.error("{}: can't rename a file while it is being uploaded", src.path)
            raise OSError(errno.EBUSY, "file is being uploaded")
        if dst is not None:
            dst.unlinked = True
            self._detach(dst)
        self._detach(src)
        src.parent = dst_dir
        self._repath(src, new_path)
        self._attach(dst_dir, src)

    def _repath(self, node: Node, path: str) -> None:
        node.path = path
        for name, child in (node.children or {}).items():
            self._repath(child, join(path, name))

    # ----- files ----------------------------------------------------------------------

    def _new_fh(self, handle: Handle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = handle
        return fh

    def _write_handle(self, node: Node, truncate: bool) -> WriteHandle:
        return WriteHandle(
            node,
            self._storage,
            self.options,
            truncate=truncate,
            on_committed=self._committed,
            on_failed=self._upload_failed,
            set_mtime=self._apply_mtime,
        )

    def _committed(self, node: Node) -> None:
        node.on_remote = True
        if node.upload_settled is not None:
            node.upload_settled.set()
        if not node.unlinked and node.parent is not None:
            self._attach(node.parent, node)

    def _upload_failed(self, node: Node) -> None:
        # A new file that never reached the remote: drop it, as rclone does.
        if node.upload_settled is not None:
            node.upload_settled.set()
        if node.writers == 0:
            self._detach(node)

    @_errno_boundary
    async def create(self, parent_inode: int, name: str, flags: int) -> tuple[int, NodeAttr]:
        """Create and open a file; it is listed at once and is on the remote, if
        only empty, once the handle is released."""
        self._need_writable("create")
        parent = self._dir(parent_inode)
        existing = self._find(await self._listing(parent), name)
        if existing is not None:
            if flags & os.O_EXCL:
                raise OSError(errno.EEXIST, f"{existing.path!r} exists")
            if existing.is_dir:
                raise OSError(errno.EISDIR, f"{existing.path!r} is a directory")
            fh = await self._open(existing, flags)
            return fh, existing.attr(self.options)
        node = self._new_node(parent, name, False, 0, time.time())
        node.on_remote = False
        self._attach(parent, node)
        fh = self._new_fh(self._write_handle(node, truncate=True))
        return fh, node.attr(self.options)

    @_errno_boundary
    async def open(self, inode: int, flags: int) -> int:
        return await self._open(self._node(inode), flags)

    async def _open(self, node: Node, flags: int) -> int:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        access = flags & os.O_ACCMODE
        if access == os.O_RDONLY and flags & os.O_TRUNC:
            # Undefined by POSIX; rclone refuses it rather than guess.
            raise OSError(errno.EINVAL, "O_TRUNC with O_RDONLY")
        if access not in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR):
            raise OSError(errno.EPERM, f"can't open with flags {flags:#x}")
        write = access != os.O_RDONLY or bool(flags & (os.O_TRUNC | os.O_CREAT))
        if write:
            self._need_writable("open for writing")
            if access == os.O_RDWR:
                # rclone's rule for cache mode off: open write-only and hope no
                # read comes; one that does fails with EPERM and is logged.
                logger.info(
                    "{}: opened read-write with --vfs-cache-mode off: reads will fail",
                    node.path,
                )
            return self._new_fh(self._write_handle(node, truncate=bool(flags & os.O_TRUNC)))
        if not node.on_remote:
            await self._wait_uploaded(node)
        return self._new_fh(ReadHandle(node, self._storage, self.options))

    async def _wait_uploaded(self, node: Node) -> None:
        if node.writers > 0:
            node.upload_settled = node.upload_settled or asyncio.Event()
            try:
                await asyncio.wait_for(node.upload_settled.wait(), _WAIT_FOR_UPLOAD)
            except TimeoutError:
                pass
        if not node.on_remote:
            raise OSError(errno.ENOENT, f"{node.path!r} is still being written")

    def _handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    @_errno_boundary
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        return await self._handle(fh).read(offset, size)

    @_errno_boundary
    async def write(self, fh: int, offset: int, data: bytes) -> int:
        return await self._handle(fh).write(offset, data)

    @_errno_boundary
    async def flush(self, fh: int) -> None:
        await self._handle(fh).flush()

    @_errno_boundary
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh, None)
        if handle is None:
            raise OSError(errno.EBADF, f"unknown file handle {fh}")
        await handle.release()

    async def fsync(self, fh: int) -> None:
        self._handle(fh)  # uploads are committed at close; nothing to sync before

    def statfs(self) -> FsStats:
        total = self.options.disk_space_total_size
        if total == UNLIMITED or total < 0:
            total = _DEFAULT_TOTAL
        blocks = total // _STATFS_BLOCK
        return FsStats(
            block_size=_STATFS_BLOCK,
            blocks=blocks,
            blocks_free=blocks,  # the remote reports no usage through the port
            blocks_avail=blocks,
            files=_DEFAULT_FILES,
            files_free=_DEFAULT_FILES,
            name_max=_NAME_MAX,
        )

    async def aclose(self) -> None:
        """Release every handle still open (committing uploads), for shutdown.
        The storage is not closed: its owner does that."""
        for fh in list(self._handles):
            handle = self._handles.pop(fh)
            try:
                await handle.release()
            except Exception as exc:
                logger.error("{}: release at shutdown failed: {!r}", handle.node.path, exc)
        self._dir_handles.clear()


__all__ = ["FsStats", "Handle", "NodeAttr", "Vfs"]
