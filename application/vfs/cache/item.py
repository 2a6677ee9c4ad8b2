"""One cached file: a sparse data file plus its record (`domain.cache_record`).

The item knows which byte ranges of its data file hold real data; the missing
ones come from the remote through its `Downloads`, which only fill bytes still
missing when they land, so a download never overwrites a write made meanwhile.

Its record is saved as the state changes: a record saying dirty at the first
change (so even a worker killed before close leaves its data found), again at
each flush, and at the last close once more after an fsync of the data: from
then on the file is "dirty and complete" on disk.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger

from application.ports import CacheFile, CacheStore, RemoteStorage
from application.vfs.cache.downloads import MIN_FETCH, Downloads
from application.vfs.cache.stats import ReadCounters
from domain.cache_record import CacheRecord
from domain.fingerprint import Fingerprint
from domain.volume import VfsOptions


class CacheItem:
    """One cached file. Its record is the state; the rest is runtime only."""

    def __init__(
        self,
        record: CacheRecord,
        store: CacheStore,
        storage: RemoteStorage,
        options: VfsOptions,
        *,
        read_counters: ReadCounters | None = None,
    ) -> None:
        self.record = record
        self._read_counters = read_counters or ReadCounters()
        self._store = store
        self.file: CacheFile | None = None
        self.opens = 0  # open handles
        self.users = 0  # open handles, plus one per upload or stream using the file
        self.removed = False
        # Bumped by every change of the content: an upload compares it.
        self.generation = 0
        # Bumped by every change of the record, downloads included; what was saved.
        self._version = 0
        self._saved_version = -1
        self._durable_version = -1  # made durable, data and record
        self._dirty_on_disk = False  # a record saying dirty has been written
        # The last record saved had every byte of its size present: then a killed
        # worker's data file alone tells the whole content (see ItemRegistry.load).
        self._saved_complete = False
        self._atime_saved = True  # the last use is in the record on disk
        self._file_lock = asyncio.Lock()
        # --vfs-handle-caching: the last close keeps the data file (and the remote
        # reader) open this long, so a program that closes and reopens at once (a
        # player, a scanner) does not pay for opening them again.
        self._handle_caching = options.handle_caching
        self._lingering: asyncio.TimerHandle | None = None
        self._linger_close: asyncio.Task[None] | None = None
        # The path at the time the reader opens: a rename may come first.
        self.downloads = Downloads(self, lambda: storage.open_reader(self.path), options)

    def mark_loaded(self) -> None:
        """The record came from disk: it is saved as it is."""
        self._dirty_on_disk = self.record.dirty
        self._saved_complete = self.record.ranges.covers(0, self.record.size)
        self._saved_version = self._durable_version = self._version

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def mtime(self) -> float:
        return self.record.mtime

    @property
    def dirty(self) -> bool:
        return self.record.dirty

    @property
    def holds_local_changes(self) -> bool:
        """Its size and time beat the remote's (dirty, or open)."""
        return self.dirty or self.opens > 0

    def inflight_bytes(self) -> int:
        return self.downloads.inflight_bytes()

    # ----- the data file ------------------------------------------------------------

    async def open_file(self) -> CacheFile:
        async with self._file_lock:
            if self.file is None:
                self.file = await self._store.open(self.path)
                if self.file.length() != self.size:
                    self.file.truncate(self.size)
            return self.file

    async def close_file(self, *, force: bool = False) -> None:
        """Close the data file (and the remote reader) once nobody uses it."""
        if self.users > 0 and not force:
            return
        async with self._file_lock:
            if self.users > 0 and not force:
                return  # opened again while this waited for the lock
            await self.downloads.close_reader()
            file, self.file = self.file, None
            if file is not None:
                await file.close()

    @asynccontextmanager
    async def in_use(self) -> AsyncIterator[CacheFile]:
        """The data file, kept open for a user other than a handle."""
        self.users += 1
        try:
            yield await self.open_file()
        finally:
            self.users -= 1
            await self.close_file()

    # ----- open and close -----------------------------------------------------------

    async def open(self, now: float) -> None:
        self.opens += 1
        self.users += 1
        self.record.atime = now
        try:
            await self.open_file()
        except BaseException:
            self.opens -= 1
            self.users -= 1
            raise

    async def close(self, now: float) -> bool:
        """One handle fewer; True when this was the last and the item is dirty
        (its upload is due)."""
        self.opens -= 1
        self.record.atime = now
        upload_due = False
        try:
            if self.opens == 0:
                await self.downloads.stop()
                if not self.removed:
                    if self.dirty:
                        await self._make_durable()
                        upload_due = True
                    elif self._saved_version != self._version:
                        await self.save(durable=False)
                    else:
                        self._atime_saved = False  # saved later; a read costs no write
        finally:
            # Even when the cache's disk is full: the data file is closed, so that
            # deleting files frees their space.
            self.users -= 1
            if self.opens == 0 and not self.removed and self._handle_caching > 0:
                self._close_later()
            else:
                await self.close_file()
        return upload_due

    def _close_later(self) -> None:
        if self._lingering is not None:
            self._lingering.cancel()

        def close() -> None:
            self._lingering = None
            # close_file does nothing if the file was opened again meanwhile.
            self._linger_close = asyncio.ensure_future(self.close_file())

        self._lingering = asyncio.get_running_loop().call_later(self._handle_caching, close)

    async def _make_durable(self) -> None:
        """ "Dirty and complete": the data is durable before the record says so."""
        if self._durable_version == self._version:
            return
        version = self._version
        assert self.file is not None
        try:
            await self.file.sync()
            await self.save(durable=True)
        except OSError as exc:
            # The upload is still due, from the data file; only a crash before it
            # would lose this write, as it would on a local disk that is full.
            logger.error("{}: cannot record the write in the cache ({})", self.path, exc)
            return
        self._durable_version = version

    async def reset(self, record: CacheRecord) -> None:
        """Drop the data: the remote file changed under a clean copy."""
        await self.downloads.stop()
        self.record = record
        self.generation += 1
        self._version += 1
        async with self.in_use() as file:
            file.truncate(0)  # the old data goes, and its blocks with it
            file.truncate(record.size)

    # ----- reading ------------------------------------------------------------------

    async def read(self, offset: int, size: int, ahead: int = 0) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        if not self.record.ranges.covers(offset, end):
            self._read_counters.misses += 1
            await self.downloads.fill(offset, end, minimum=MIN_FETCH)
        else:
            self._read_counters.hits += 1
        if ahead > 0:
            self.downloads.read_ahead(end, min(end + ahead, self.size))
        else:
            self.downloads.stop_reading_ahead()
        assert self.file is not None
        return self.file.pread(offset, end - offset)

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.record.ranges.missing(start, end)

    def accept_download(self, start: int, end: int, data: bytes) -> None:
        if self.file is None:
            return  # closed meanwhile: nothing to keep it in
        expected = min(end, self.size)
        ranges = self.record.ranges
        if start + len(data) < expected and ranges.missing(start + len(data), expected):
            raise OSError(
                errno.EIO,
                f"{self.path}: the remote file is shorter than expected "
                f"({start + len(data)} < {expected}): it changed while being read",
            )
        # Only the bytes still missing: a write made while this was in flight wins.
        for gap_start, gap_end in ranges.missing(start, min(start + len(data), self.size)):
            self.file.pwrite(gap_start, data[gap_start - start : gap_end - start])
            ranges.add(gap_start, gap_end)
            self._version += 1

    # ----- changing -----------------------------------------------------------------

    def write(self, offset: int, data: bytes) -> None:
        """Write into the data file; the caller then calls `changed`."""
        assert self.file is not None
        record = self.record
        if offset > record.size:
            record.ranges.add(record.size, offset)  # the hole reads as zeros: present
        self.file.pwrite(offset, data)
        record.ranges.add(offset, offset + len(data))
        record.size = max(record.size, offset + len(data))

    def truncate(self, size: int) -> None:
        """Change the size; the caller then calls `changed`."""
        assert self.file is not None
        record = self.record
        self.file.truncate(size)
        if size < record.size:
            record.ranges.truncate(size)
        else:
            record.ranges.add(record.size, size)
        record.size = size

    def changed(self, now: float) -> None:
        """After a change of the content: dirty from now on (`record_dirty`
        then says so on disk)."""
        self.generation += 1
        self._version += 1
        self.record.mtime = now
        self.record.atime = now
        self.record.dirty = True

    async def record_dirty(self) -> None:
        if not self._dirty_on_disk:
            self._dirty_on_disk = True  # one save, however many writes arrive meanwhile
            try:
                await self.save(durable=False)
            except BaseException:
                self._dirty_on_disk = False
                raise

    def set_mtime(self, mtime: float) -> None:
        """A new modification time (saved by the caller once nothing has the
        item open)."""
        self.record.mtime = mtime
        if not self.dirty:
            fp = self.record.fingerprint
            if fp is not None and fp.mtime is not None:
                self.record.fingerprint = Fingerprint(fp.size, mtime, fp.hash)
        self.generation += 1
        self._version += 1

    async def moved_to(self, path: str) -> None:
        self.record.path = path
        self.generation += 1
        self._version += 1
        await self.save(durable=self.dirty)

    async def uploaded(self, fingerprint: Fingerprint) -> None:
        self.record.dirty = False
        self.record.fingerprint = fingerprint
        await self.save(durable=False)

    # ----- the record -----------------------------------------------------------------

    async def flush(self) -> None:
        """At close(2): record size and ranges, so a killed worker finds them.
        Not needed when the record on disk is dirty and was complete: the data
        file then tells everything (the common case of a file written whole)."""
        if self._saved_version == self._version:
            return
        if self._dirty_on_disk and self._saved_complete:
            return
        await self.save(durable=False)

    async def fsync(self) -> None:
        if self.file is not None:
            await self.file.sync()
        await self.save(durable=True)

    async def save_access_time(self) -> None:
        if not self._atime_saved and not self.removed:
            await self.save(durable=False)

    async def save(self, *, durable: bool) -> None:
        if self.removed:
            return
        version = self._version
        complete = self.record.ranges.covers(0, self.size)
        await self._store.save_record(self.path, self.record.to_json(), durable=durable)
        self._saved_version = version
        self._dirty_on_disk = self.record.dirty
        self._saved_complete = complete
        self._atime_saved = True
