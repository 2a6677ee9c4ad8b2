"""Open-file handles, with rclone's rules.

Uncached (cache mode off, and the opens the other modes do not cache): read
handles stream from the remote through `ReadAhead`; write handles stream
sequential writes into a `RemoteWriter`. close(2) sends a flush and waits for
it, and release only comes later, so the flush is the commit point: close()
returns once the file is on the remote, or with the upload's error. Nothing is
kept on disk, so a write at any other offset than the current end cannot be
honoured. Cached handles read and write the item's cache file
(`application.vfs.cache`).
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from loguru import logger

from application.ports import RemoteStorage, RemoteWriter
from application.vfs.cache.item import CacheItem
from application.vfs.cache.null import FileCache
from application.vfs.nodes import Node
from application.vfs.reader import MAX_PIECE, ReadAhead
from domain.cache_policy import OpenPlan
from domain.read_ahead import ReadAheadPolicy
from domain.volume import UNLIMITED, CacheMode, VfsOptions


class Handle(Protocol):
    """An open file, as the VFS serves it whatever the kind."""

    @property
    def node(self) -> Node: ...

    async def read(self, offset: int, size: int) -> bytes: ...

    async def write(self, offset: int, data: bytes) -> int: ...

    async def ftruncate(self, size: int) -> bool:
        """Truncate the file through this handle, if the handle can; False:
        the VFS truncates it by its path."""
        ...

    async def flush(self) -> None: ...

    async def fsync(self) -> None: ...

    async def release(self) -> None: ...


class ReadHandle:
    def __init__(self, node: Node, storage: RemoteStorage, options: VfsOptions) -> None:
        self.node = node
        self._stream = ReadAhead(
            # node.path at open time of the remote reader: a rename may come first.
            lambda: storage.open_reader(node.path),
            node.size,
            window=options.buffer_size if options.buffer_size != UNLIMITED else MAX_PIECE,
            chunk_size=options.read_chunk_size,
            chunk_limit=options.read_chunk_size_limit,
            read_wait=options.read_wait,
            no_seek=options.no_seek,
            name=node.path,
            streams=options.read_chunk_streams,
        )

    async def read(self, offset: int, size: int) -> bytes:
        return await self._stream.read(offset, size)

    async def write(self, offset: int, data: bytes) -> int:
        raise OSError(errno.EBADF, "handle is open for reading only")

    async def ftruncate(self, size: int) -> bool:
        return False  # the file's writers, or its cache item, if any

    async def flush(self) -> None:
        pass

    async def fsync(self) -> None:
        pass

    async def release(self) -> None:
        await self._stream.close()


class WriteHandle:
    """A sequential upload. Mirrors rclone's write handle: the upload starts at
    the first write (or flush), and only once it is known to be safe to replace
    the remote file (O_TRUNC, a truncate to 0, or a file that is not there yet).

    Every flush commits: after writes, the upload, and the handle is closed (a
    later write through a dup'ed descriptor fails with EBADF, as in rclone);
    before any write, an empty file, and the handle stays usable, because a
    shell's `> file` (open, dup2, close the original, write through the copy)
    flushes before it writes: the first write then starts a new upload, which
    replaces the empty file at the next flush. Release only commits what no
    flush did (a handle never flushed, at shutdown)."""

    def __init__(
        self,
        node: Node,
        storage: RemoteStorage,
        options: VfsOptions,
        *,
        truncate: bool,
        on_committed: Callable[[Node], None],
        on_failed: Callable[[Node], None],
        set_mtime: Callable[[Node, float], Awaitable[None]],
    ) -> None:
        self.node = node
        self._storage = storage
        self._options = options
        self._truncated = truncate
        self._on_committed = on_committed
        self._on_failed = on_failed
        self._set_mtime = set_mtime
        self._writer: RemoteWriter | None = None
        self._offset = 0
        self._write_called = False
        self._closed = False
        self._flushed_empty = False  # the remote holds this unwritten handle's empty file
        self._cond = asyncio.Condition()
        self.pending_mtime: float | None = None
        node.add_writer(self)

    def _safe_to_truncate(self) -> bool:
        return self._truncated or not self.node.on_remote

    async def _open_pending(self) -> RemoteWriter:
        if self._writer is not None:
            return self._writer
        if not self._safe_to_truncate():
            logger.error(
                "{}: can't open an existing file for writing without O_TRUNC with --vfs-cache-mode off",
                self.node.path,
            )
            raise OSError(errno.EPERM, "existing file opened for write without O_TRUNC")
        self._writer = await self._storage.open_writer(self.node.path)
        self.node.size = 0
        self._truncated = True
        return self._writer

    async def read(self, offset: int, size: int) -> bytes:
        logger.error(
            "{}: can't read a file opened for writing with --vfs-cache-mode off", self.node.path
        )
        raise OSError(errno.EPERM, "read on a write handle")

    async def write(self, offset: int, data: bytes) -> int:
        async with self._cond:
            if self._closed:
                raise OSError(errno.EBADF, "write after the upload was committed")
            if self._writer is None and not self._safe_to_truncate():
                # Checked before the offset: an append to an existing file (which
                # writes at its end) fails for this reason, not for seeking.
                await self._open_pending()
            if self._offset != offset:
                # The kernel may deliver writes slightly out of order: wait for the gap.
                try:
                    await asyncio.wait_for(
                        self._cond.wait_for(lambda: self._offset == offset or self._closed),
                        self._options.write_wait,
                    )
                except TimeoutError:
                    pass
            if self._closed:
                raise OSError(errno.EBADF, "write after the upload was committed")
            if self._offset != offset:
                logger.error(
                    "{}: can't seek while writing with --vfs-cache-mode off (write at {}, file end {})",
                    self.node.path,
                    offset,
                    self._offset,
                )
                raise OSError(errno.ESPIPE, "non-sequential write")
            writer = await self._open_pending()
            self._write_called = True
            await writer.write(data)
            self._offset += len(data)
            self.node.size = self._offset
            self._cond.notify_all()
            return len(data)

    async def ftruncate(self, size: int) -> bool:
        if self._closed:
            return False
        await self.truncate(size)
        return True

    async def truncate(self, size: int) -> None:
        async with self._cond:
            if size != self._offset:
                logger.error(
                    "{}: can't change the size of a file being written with --vfs-cache-mode off",
                    self.node.path,
                )
                raise OSError(errno.EPERM, "truncate while writing")
            if size == 0:
                self._truncated = True

    async def flush(self) -> None:
        async with self._cond:
            if self._closed:
                return
            if self._write_called:
                await self._close()
                return
            if self._writer is None and not self._safe_to_truncate():
                # Opened without O_TRUNC and never written: the remote file stays,
                # and close() says why nothing can be written (as rclone does).
                await self._open_pending()
            if self._flushed_empty:
                return  # another descriptor's close: the empty file is there already
            try:
                await self._upload()
                self._flushed_empty = True
            finally:
                self._writer = None  # the next write starts a new upload

    async def fsync(self) -> None:
        pass  # uncached uploads are committed at close; nothing to sync before

    async def release(self) -> None:
        async with self._cond:
            if self._closed:
                return
            if self._flushed_empty and not self._write_called:
                self._closed = True  # nothing written since the flush committed
                self.node.remove_writer(self)
                return
            await self._close()  # never flushed: commit now

    @property
    def in_progress(self) -> bool:
        """Open with something the remote does not reflect yet: writes, or an
        open not flushed yet. A handle whose flush committed its empty file is
        not (a truncate or utime of the file goes to the remote directly)."""
        return not self._closed and not (self._flushed_empty and not self._write_called)

    async def _close(self) -> None:
        self._closed = True
        self._cond.notify_all()
        self.node.remove_writer(self)
        if self._writer is None and not self._safe_to_truncate():
            return  # never written: the remote file stays as it was
        await self._upload()

    async def _upload(self) -> None:
        # Opens, lookups, renames and unlinks of the node wait for it.
        with self.node.committing():
            await self._commit()

    async def _commit(self) -> None:
        node = self.node
        try:
            writer = await self._open_pending()
            if node.unlinked:
                await writer.abort()
                return
            await writer.commit()
        except BaseException as exc:
            logger.error("{}: upload failed: {!r}", node.path, exc)
            if self._writer is not None:
                try:
                    await self._writer.abort()
                except Exception as abort_exc:
                    logger.warning("{}: abort after failed upload: {!r}", node.path, abort_exc)
            if not node.on_remote:
                self._on_failed(node)
            if isinstance(exc, OSError) and exc.errno:
                raise
            if isinstance(exc, Exception):
                raise OSError(errno.EIO, f"upload of {node.path} failed: {exc}") from exc
            raise
        node.size = self._offset
        node.mtime = time.time()
        self._on_committed(node)
        if self.pending_mtime is not None:
            # A utime() during the upload: the remote file only exists now.
            await self._set_mtime(node, self.pending_mtime)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def upload_started(self) -> bool:
        return self._writer is not None


class CachedHandle:
    """A handle served from the item's cache file (modes minimal, writes, full).

    Any offset may be read or written; the operation the open's access mode
    lacks fails with EBADF. Sequential reads fetch ahead: `buffer-size` (at most
    that much in memory at once), plus `vfs-read-ahead` more onto disk in mode
    full."""

    def __init__(
        self,
        node: Node,
        cache: FileCache,
        item: CacheItem,
        plan: OpenPlan,
        options: VfsOptions,
    ) -> None:
        self.node = node
        self.item = item
        self._cache = cache
        self._plan = plan
        buffer = options.buffer_size if options.buffer_size != UNLIMITED else 0
        extra = options.read_ahead if options.cache_mode is CacheMode.FULL else 0
        # Twice the sequential streak, only once a read has followed another.
        self._read_ahead = ReadAheadPolicy(
            max_ahead=max(buffer, 0) + max(extra, 0), streak_factor=2, proven_only=True
        )
        self._position = self._read_ahead.start()
        self._released = False

    async def read(self, offset: int, size: int) -> bytes:
        if not self._plan.read:
            raise OSError(errno.EBADF, "handle is not open for reading")
        self._position = self._read_ahead.read(self._position, offset, size)
        return await self.item.read(offset, size, self._read_ahead.ahead(self._position, size))

    async def write(self, offset: int, data: bytes) -> int:
        if not self._plan.write:
            raise OSError(errno.EBADF, "handle is not open for writing")
        if self._plan.append:
            offset = self.item.size
        return await self._cache.write(self.item, offset, data)

    async def ftruncate(self, size: int) -> bool:
        if self._released:
            return False
        await self.truncate(size)
        return True

    async def truncate(self, size: int) -> None:
        await self._cache.truncate(self.item, size)

    async def flush(self) -> None:
        if not self._released:
            await self.item.flush()

    async def fsync(self) -> None:
        await self.item.fsync()

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._cache.release(self.item)
