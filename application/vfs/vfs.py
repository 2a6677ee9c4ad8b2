"""The VFS engine: a file-system view of a `RemoteStorage`, driven by inode numbers.

It follows rclone's VFS: a directory cache whose listings stay fresh for
`dir_cache_time` and are patched in place by changes made through the VFS;
opens served as `domain.cache_policy.plan_open` decides for the cache mode,
either uncached (streaming read handles, sequential write handles that upload as
they go) or through the on-disk file cache (`application.vfs.cache`), whose
dirty files show in listings with their local size until they are uploaded.
Every public method raises only `OSError` with an errno, ready for a FUSE reply.

Lifecycle: `start()` loads the cache (uploading what a killed worker left
dirty); `aclose()` releases the handles still open; `drain()` then uploads
everything pending; `stop()` cancels background work.
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

from application.ports import CacheStore, RemoteStorage
from application.vfs.cache import CacheItem, VfsCache
from application.vfs.handles import CachedHandle, ReadHandle, WriteHandle
from application.vfs.nodes import ROOT_INODE, Node, NodeAttr
from domain.cache_policy import OpenRefused, OpenRequest, plan_open
from domain.cache_record import CacheRecord
from domain.errors import OptionError, RemoteUnavailable
from domain.fingerprint import Fingerprint
from domain.paths import UnsafePath, join
from domain.remote_entry import RemoteEntry
from domain.volume import UNLIMITED, CacheMode, VfsOptions

P = ParamSpec("P")
T = TypeVar("T")

Handle = ReadHandle | WriteHandle | CachedHandle

# rclone's mount reports 1 PiB and a billion inodes when the remote says nothing.
_STATFS_BLOCK = 4096
_DEFAULT_TOTAL = 1 << 50
_DEFAULT_FILES = 1_000_000_000
_NAME_MAX = 255
_WAIT_FOR_UPLOAD = 5.0  # how long an operation waits for an upload of its file to land


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
        except OpenRefused as exc:
            raise exc.to_oserror() from exc
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
        *,
        cache_store: CacheStore | None = None,
        slow_modtime: bool = False,
        wall_clock: Callable[[], float] = time.time,
        upload_retry_base: float = 1.0,
    ) -> None:
        """`cache_store`: the volume's disk cache, needed by every cache mode but
        off (where it is still loaded, to upload what a killed worker left).
        `slow_modtime`: the backend needs an extra call per file for modification
        times (S3 and the like), so --vfs-fast-fingerprint leaves them out."""
        if options.cache_mode is not CacheMode.OFF and cache_store is None:
            raise OptionError(f"vfs-cache-mode {options.cache_mode.value} needs a cache directory")
        self._storage = storage
        self.options = options
        self._clock = clock
        self._slow_modtime = slow_modtime
        self.cache: VfsCache | None = None
        if cache_store is not None:
            self.cache = VfsCache(
                cache_store,
                storage,
                options,
                wall_clock=wall_clock,
                on_uploaded=self._cache_uploaded,
                retry_base=upload_retry_base,
            )
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
                    # An upload in progress, or local changes, know better.
                    if child.writers == 0:
                        if not self._local_changes(child.path):
                            child.size = entry.size
                            if entry.mtime > 0 or not child.is_dir:
                                child.mtime = entry.mtime
                        child.on_remote = True
                else:
                    child = self._new_node(d, name, entry.is_dir, entry.size, entry.mtime)
                    self._apply_local(child)
                new[name] = child
            for name, child in old.items():
                # Files created through the VFS and not uploaded yet are not at the
                # remote, but they exist for the user.
                if name not in new and (not child.on_remote or child.writers > 0):
                    new[name] = child
            if self.cache is not None:
                # Dirty files a previous worker left: they exist for the user too.
                for item in self.cache.dirty_children(d.path):
                    name = item.path.rpartition("/")[2]
                    if name not in new:
                        child = self._new_node(d, name, False, item.size, item.record.mtime)
                        child.on_remote = False
                        new[name] = child
            d.children = new
            d.listed_at = self._clock()
            return new

    def _local_changes(self, path: str) -> bool:
        return self.cache is not None and self.cache.holds_local_changes(path)

    def _apply_local(self, node: Node) -> None:
        """Give a file node the size and time of its local changes, if any."""
        if self.cache is None or node.is_dir:
            return
        item = self.cache.item(node.path)
        if item is not None and (item.dirty or item.opens > 0):
            node.size = item.size
            node.mtime = item.record.mtime

    def _node_at(self, path: str) -> Node | None:
        """The node already known for `path`, without listing anything."""
        node = self._nodes[ROOT_INODE]
        for name in (p for p in path.split("/") if p):
            if node.children is None or name not in node.children:
                return None
            node = node.children[name]
        return node

    def _cache_uploaded(self, path: str, record: CacheRecord) -> None:
        node = self._node_at(path)
        if node is not None and not node.is_dir:
            node.on_remote = True

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
        node = await self._child(parent, name)
        await self._settle_commit(node, must=False)  # its size once committed
        return node.attr(self.options)

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
            if fh is None:
                await self._settle_commit(node)
            await self._truncate(node, size, self._handles.get(fh) if fh is not None else None)
        if mtime is not None and not self.options.no_modtime:
            await self._set_mtime(node, mtime)
        return node.attr(self.options)

    async def _truncate(self, node: Node, size: int, handle: Handle | None) -> None:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        if isinstance(handle, WriteHandle) and handle.node is node:
            live = [handle] if not handle.closed else []
        elif isinstance(handle, CachedHandle):
            live = []  # an ftruncate through the cache
        else:
            live = [
                h
                for h in self._handles.values()
                if isinstance(h, WriteHandle) and h.node is node and h.in_progress
            ]
        if live:
            for h in live:
                await h.truncate(size)
            return
        mode = self.options.cache_mode
        if self.cache is not None and mode is not CacheMode.OFF:
            # Mode minimal caches only what needs it: an existing item, or a size
            # the streaming path cannot give.
            if self.cache.has(node.path) or mode is not CacheMode.MINIMAL or size != 0:
                await self._truncate_cached(node, size)
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

    async def _truncate_cached(self, node: Node, size: int) -> None:
        # Through the cache item, which every cached handle of the file shares;
        # the change is uploaded like any other once the item is closed.
        cache = self._need_cache()
        item = await self._acquire(node, keep_data=size > 0)
        try:
            await cache.truncate(item, size)
            node.size, node.mtime = item.size, item.record.mtime
        finally:
            await cache.release(item)

    async def _set_mtime(self, node: Node, mtime: float) -> None:
        if self.cache is not None and not node.is_dir and self.cache.has(node.path):
            if await self.cache.set_mtime(node.path, mtime):
                node.mtime = mtime  # the upload carries it to the remote
                return
        pending = [
            h
            for h in self._handles.values()
            if isinstance(h, WriteHandle) and h.node is node and h.in_progress
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
        await self._settle_commit(node)
        if self.cache is not None:
            await self.cache.remove(node.path)  # its upload stops first
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
        await self._settle_commit(src)
        dst_dir = self._dir(new_parent)
        new_path = join(dst_dir.path, new_name)
        dst = (await self._listing(dst_dir)).get(new_name)
        if dst is src:
            return
        if dst is not None:
            await self._settle_commit(dst)  # a late commit would bring it back
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
        if not src.on_remote and any(
            isinstance(h, WriteHandle) and h.node is src and h.upload_started and not h.closed
            for h in self._handles.values()
        ):
            # An uncached write uploads to the name given at the first write.
            logger.error("{}: can't rename a file while it is being uploaded", src.path)
            raise OSError(errno.EBUSY, "file is being uploaded")
        if self.cache is not None:
            # Pending uploads stop, then go to the new name once the cache moved.
            await self.cache.pause_uploads(src.path)
        try:
            if src.on_remote:
                await self._storage.rename(src.path, new_path)
            elif dst is not None and not dst.is_dir and dst.on_remote:
                # The replaced file goes now; the source reaches the remote under
                # this name when its upload runs.
                await self._storage.remove(dst.path)
        except BaseException:
            if self.cache is not None:
                self.cache.resume_uploads(src.path)
            raise
        if self.cache is not None:
            await self.cache.rename(src.path, new_path)
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
        if not node.unlinked and node.parent is not None:
            self._attach(node.parent, node)

    def _upload_failed(self, node: Node) -> None:
        # A new file that never reached the remote: drop it, as rclone does.
        if node.writers == 0:
            self._detach(node)

    @_errno_boundary
    async def create(self, parent_inode: int, name: str, flags: int) -> tuple[int, NodeAttr]:
        """Create and open a file; it is listed at once and is on the remote, if
        only empty, once the handle is flushed (closed) or released."""
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
        path = join(parent.path, name)
        plan = plan_open(
            self.options.cache_mode,
            _request(flags | os.O_CREAT, exists=False),
            read_only=self.options.read_only,
            in_cache=self.cache is not None and self.cache.has(path),
        )
        node = self._new_node(parent, name, False, 0, time.time())
        node.on_remote = False
        self._attach(parent, node)
        try:
            if plan.cached:
                item = await self._acquire(node, keep_data=False)
                handle: Handle = CachedHandle(node, self._need_cache(), item, plan, self.options)
                await handle.truncate(0)  # a new file: dirty, so it is uploaded even empty
            else:
                handle = self._write_handle(node, truncate=True)
        except BaseException:
            self._detach(node)
            raise
        return self._new_fh(handle), node.attr(self.options)

    @_errno_boundary
    async def open(self, inode: int, flags: int) -> int:
        return await self._open(self._node(inode), flags)

    async def _open(self, node: Node, flags: int) -> int:
        if node.is_dir:
            raise OSError(errno.EISDIR, f"{node.path!r} is a directory")
        # A commit in progress would race this open's view of the remote file.
        await self._settle_commit(node, must=False)
        plan = plan_open(
            self.options.cache_mode,
            _request(flags, exists=True),
            read_only=self.options.read_only,
            in_cache=self.cache is not None
            and self.options.cache_mode is not CacheMode.OFF
            and self.cache.has(node.path),
        )
        if plan.cached:
            item = await self._acquire(node, keep_data=not plan.truncate)
            try:
                handle = CachedHandle(node, self._need_cache(), item, plan, self.options)
                if plan.truncate:
                    await handle.truncate(0)
            except BaseException:
                await self._need_cache().release(item)
                raise
            return self._new_fh(handle)
        if plan.write:
            if flags & os.O_ACCMODE == os.O_RDWR:
                # rclone's rule for an uncached open: write-only, and hope no read
                # comes; one that does fails with EPERM and is logged.
                logger.info(
                    "{}: opened read-write with --vfs-cache-mode {}: reads will fail",
                    node.path,
                    self.options.cache_mode.value,
                )
            return self._new_fh(self._write_handle(node, truncate=plan.truncate))
        if not node.on_remote:
            await self._wait_uploaded(node)
        return self._new_fh(ReadHandle(node, self._storage, self.options))

    def _need_cache(self) -> VfsCache:
        assert self.cache is not None  # a cached plan implies a cache mode, so a cache
        return self.cache

    async def _acquire(self, node: Node, *, keep_data: bool) -> CacheItem:
        """Open `node`'s cache item, its data checked against the remote file.

        The remote's fingerprint comes from a fresh stat, unless
        --vfs-fast-fingerprint says to trust the directory cache (and to leave out
        modification times where the backend makes them slow). Data about to be
        truncated away needs no check at all."""
        cache = self._need_cache()
        item = cache.item(node.path)
        remote: Fingerprint | None = None
        if item is not None and (item.dirty or item.opens > 0 or not keep_data):
            # In use, holding local changes, or about to be emptied: nothing to check.
            remote = item.record.fingerprint
        elif node.on_remote:
            fast = self.options.fast_fingerprint
            entry: RemoteEntry | None = RemoteEntry(node.name, False, node.size, node.mtime)
            if keep_data and not fast:
                try:
                    entry = await self._storage.stat(node.path)
                except FileNotFoundError:
                    entry = None
            if entry is not None:
                remote = Fingerprint.of(entry, fast=fast, mtime_is_slow=self._slow_modtime)
        item = await cache.acquire(node.path, remote, node.mtime)
        node.size, node.mtime = item.size, item.record.mtime
        return item

    async def _settle_commit(self, node: Node, *, must: bool = True) -> None:
        """An uncached upload whose handle was closed commits under the name it
        was opened with: let it land before the name is opened, looked up,
        changed or removed. `must`: EBUSY if it takes too long, else go on."""
        if not await self._wait_for(node, lambda: node.committing > 0) and must:
            logger.error("{}: still being uploaded", node.path)
            raise OSError(errno.EBUSY, "file is being uploaded")

    async def _wait_uploaded(self, node: Node) -> None:
        await self._wait_for(node, lambda: node.writers > 0 or node.committing > 0)
        if not node.on_remote:
            raise OSError(errno.ENOENT, f"{node.path!r} is still being written")

    @staticmethod
    async def _wait_for(node: Node, busy: Callable[[], bool]) -> bool:
        """Wait while `busy()`, woken at each end of an upload of the node (the
        handles set `upload_settled`); False if still busy after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT_FOR_UPLOAD
        while busy():
            node.upload_settled = _fresh_event(node.upload_settled)
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(node.upload_settled.wait(), left)
            except TimeoutError:
                return not busy()
        return True

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

    @_errno_boundary
    async def fsync(self, fh: int) -> None:
        handle = self._handle(fh)
        if isinstance(handle, CachedHandle):
            await handle.fsync()  # durable in the cache, recorded dirty: never lost
        # Uncached uploads are committed at close; nothing to sync before.

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

    async def start(self) -> None:
        """Load the disk cache; what a killed worker left dirty starts uploading."""
        if self.cache is not None:
            await self.cache.start()

    async def drain(self) -> None:
        """Upload every pending file now and wait (after the mount has gone)."""
        if self.cache is not None:
            await self.cache.drain()

    async def stop(self) -> None:
        """Cancel background work; pending uploads stay recorded on disk."""
        if self.cache is not None:
            await self.cache.stop()

    def pending_uploads(self) -> int:
        return self.cache.pending_uploads() if self.cache is not None else 0

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


def _fresh_event(event: asyncio.Event | None) -> asyncio.Event:
    # One set by an earlier upload says nothing about the one in progress.
    return event if event is not None and not event.is_set() else asyncio.Event()


def _request(flags: int, *, exists: bool) -> OpenRequest:
    access = flags & os.O_ACCMODE
    return OpenRequest(
        readable=access in (os.O_RDONLY, os.O_RDWR),
        writable=access in (os.O_WRONLY, os.O_RDWR),
        truncate=bool(flags & os.O_TRUNC),
        append=bool(flags & os.O_APPEND),
        create=bool(flags & os.O_CREAT),
        exists=exists,
    )


__all__ = ["FsStats", "Handle", "NodeAttr", "Vfs"]
