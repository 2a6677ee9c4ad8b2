"""The VFS file cache: items on disk, downloads of the ranges read, write-back.

Each cached file is an item: a sparse data file plus a metadata record
(`domain.cache_record.CacheRecord`) in a `CacheStore`. What the item knows:

- which byte ranges of the data file hold real data (`ranges`); missing ranges
  are fetched from the remote on demand, in pipelined pieces, and written into
  the data file. A fetch only fills bytes that are still missing when it lands,
  so it never overwrites a write made meanwhile;
- the fingerprint of the remote file the data came from: a clean item whose
  remote changed is emptied when opened, a dirty one keeps its data (local
  changes win);
- whether it is dirty. A record saying dirty is written at the first change
  (so even a worker killed before close leaves its data found), refreshed at
  each flush, and at the last close written again after an fsync of the data:
  from then on the file is "dirty and complete" on disk.

Write-back: when the last handle of a dirty item closes, its upload is due
`write_back` seconds later; at most `transfers` uploads run at once; a failure is
retried after `domain.cache_policy.upload_retry_delay`. Opening the item again
postpones a pending upload; changing it cancels a running one (the upload starts
over after the next close). `drain` uploads everything now and waits, which is
what a worker does after its mount has gone. Items found dirty on disk at
`start` (a worker that was killed) are uploaded at once.

Streamed uploads: a file written sequentially from empty is sent to a remote
writer (its hidden temporary file) while it is being written, once it passes
`STREAM_AFTER`; the upload due at write-back then only sends the tail and commits.
Any other change aborts the stream, and the upload sends the whole file as usual.

Eviction: every `cache_poll_interval`, `domain.cache_policy.choose_evictions`
picks the clean, closed items to remove (by age, then least recently used above
the size limit), counting the bytes really present in the sparse files.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import time
from collections.abc import Callable, Iterable

from loguru import logger

from application.ports import (
    CacheFile,
    CacheStore,
    RemoteReader,
    RemoteStorage,
    RemoteWriter,
)
from domain.cache_policy import CacheItemUsage, choose_evictions, upload_retry_delay
from domain.cache_record import CacheRecord
from domain.fingerprint import Fingerprint
from domain.ranges import RangeSet
from domain.volume import UNLIMITED, VfsOptions

MAX_FETCH = 4 * 1024 * 1024  # one remote read; also bounds memory per request
MIN_FETCH = 256 * 1024  # a random read still asks for this much: round trips cost more
UPLOAD_PIECE = 4 * 1024 * 1024
# A file written sequentially is streamed to the remote from this size on: below
# it, starting early saves little and would only add requests while it is written.
STREAM_AFTER = 4 * 1024 * 1024


class _Fetch:
    __slots__ = ("end", "start", "task")

    def __init__(self, start: int, end: int, task: asyncio.Task[None]) -> None:
        self.start, self.end, self.task = start, end, task


class _Stream:
    """An upload that follows a sequential writer: it sends [0, end) of the data
    file to `writer` as the writes come, and waits for more until an upload
    claims it; that upload then commits the writer (see VfsCache._upload)."""

    __slots__ = ("claimed", "end", "failed", "item", "path", "sent", "task", "wakeup", "writer")

    def __init__(self, item: CacheItem, end: int) -> None:
        self.item = item
        self.path = item.path  # the writer's target: a rename aborts the stream
        self.end = end  # bytes written so far, all in sequence: what may be sent
        self.sent = 0
        self.writer: RemoteWriter | None = None
        self.wakeup = asyncio.Event()  # set by each write, and by the claim
        self.claimed = False  # no more writes: send up to `end`, then stop
        self.failed = False
        self.task: asyncio.Task[None] | None = None


class CacheItem:
    """One cached file. Its record is the state; the rest is runtime only."""

    def __init__(self, record: CacheRecord) -> None:
        self.record = record
        self.file: CacheFile | None = None
        self.reader: RemoteReader | None = None
        self.opens = 0  # open handles
        self.users = 0  # open handles, plus one while an upload uses the file
        self.generation = 0  # bumped by every change of the content: an upload compares it
        self.version = 0  # bumped by every change of the record, downloads included
        self.saved_version = -1
        self.durable_version = -1  # the version last made durable, data and record
        self.dirty_on_disk = False  # a record saying dirty has been written
        # The last record saved had every byte of its size present: then a killed
        # worker's data file alone tells the whole content (see VfsCache._load).
        self.saved_complete = False
        self.atime_saved = True  # the last use is in the record on disk
        self.upload: asyncio.Task[None] | None = None
        self.transferring = False  # the upload is past its delay, moving bytes
        self.removed = False
        self.fetches: list[_Fetch] = []
        self.ahead: tuple[int, int] | None = None  # the read-ahead window to keep filled
        self.file_lock = asyncio.Lock()
        # Written in one sequence from empty: the bytes [0, sequential_end) are the
        # whole content, as of `sequential_generation`. None once anything else
        # changed it. Runtime only.
        self.sequential_end: int | None = None
        self.sequential_generation = -1
        self.stream: _Stream | None = None  # following the sequential writes

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def dirty(self) -> bool:
        return self.record.dirty

    def inflight_bytes(self) -> int:
        return sum(f.end - f.start for f in self.fetches)


UploadedCallback = Callable[[str, CacheRecord], None]


class VfsCache:
    def __init__(
        self,
        store: CacheStore,
        storage: RemoteStorage,
        options: VfsOptions,
        *,
        wall_clock: Callable[[], float] = time.time,
        on_uploaded: UploadedCallback | None = None,
        retry_base: float = 1.0,
    ) -> None:
        self._store = store
        self._storage = storage
        self.options = options
        self._now = wall_clock
        self._on_uploaded = on_uploaded
        self._retry_base = retry_base  # first retry delay; tests shorten it
        self._items: dict[str, CacheItem] = {}
        self._transfers = asyncio.Semaphore(max(1, options.transfers))
        self._cleaner: asyncio.Task[None] | None = None
        self._draining = False
        # Streams still holding a writer or a data file; at most `transfers` start,
        # counted apart from the uploads: a stream may wait long for its writer.
        self._streams: set[_Stream] = set()
        self.uploads_done = 0  # for tests and status reports

    # ----- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Load the items on disk, upload those left dirty, start the cleaner."""
        try:
            sparse = self._store.sparse_supported()
        except OSError as exc:
            logger.error("cannot probe the cache directory for sparse files: {!r}", exc)
        else:
            if not sparse:
                logger.error(
                    "the cache directory's file system does not support sparse files: "
                    "cached files take their full size on disk and partial reads are slow"
                )
        for path, raw in await self._store.load_records():
            await self._load(path, raw)
        dirty = [item for item in self._items.values() if item.dirty]
        if dirty:
            logger.info("{} file(s) in the cache were not uploaded yet: uploading", len(dirty))
        for item in dirty:
            self._schedule(item, 0.0)
        if self.options.cache_poll_interval > 0:
            self._cleaner = asyncio.get_running_loop().create_task(self._clean_loop())

    async def _load(self, path: str, raw: bytes) -> None:
        try:
            record = CacheRecord.from_json(raw)
        except ValueError as exc:
            logger.warning("{}: damaged cache record ({}), dropping the item", path, exc)
            await self._store.remove(path)
            return
        record.path = path  # the record's place is the truth (a rename may have moved it)
        length = self._store.data_length(path)
        if record.dirty:
            if length is None:
                logger.error("{}: cache record says dirty but the data file is gone", path)
                await self._store.remove(path)
                return
            # The data file is the truth for a dirty item: bytes past the recorded
            # size were written by us after the record was saved.
            if length > record.size:
                record.ranges.add(record.size, length)
            record.ranges.truncate(length)
            record.size = length
        elif length != record.size:
            await self._store.remove(path)
            return
        record.ranges.truncate(record.size)
        item = CacheItem(record)
        item.dirty_on_disk = record.dirty
        item.saved_complete = record.ranges.covers(0, record.size)
        item.saved_version = item.durable_version = item.version
        self._items[path] = item

    async def drain(self) -> None:
        """Upload every dirty item now and wait for all of them; retries go on
        until they succeed or the caller is cancelled (the data stays on disk,
        recorded dirty, for the next start)."""
        self._draining = True
        try:
            while True:
                pending = [i for i in self._items.values() if i.dirty and not i.removed]
                if not pending:
                    break
                logger.info("uploading {} file(s)", len(pending))
                for item in pending:
                    if item.upload is None or item.upload.done() or not item.transferring:
                        self._schedule(item, 0.0)
                tasks = [i.upload for i in pending if i.upload is not None]
                # Shielded: a drain given up because the volume is mounted again
                # leaves the uploads running (stop() is what cancels them).
                await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)
            await self.clean()
            await self._save_access_times()
        finally:
            self._draining = False  # mounted again: write-back waits its delay again

    async def _save_access_times(self) -> None:
        for item in list(self._items.values()):
            if not item.atime_saved and not item.removed:
                await self._save(item, durable=False)

    async def stop(self) -> None:
        """Cancel background work (pending uploads stay recorded on disk)."""
        tasks = [t for t in (self._cleaner,) if t is not None]
        for item in self._items.values():
            self._forget_sequence(item)
            if item.upload is not None:
                tasks.append(item.upload)
            tasks.extend(f.task for f in item.fetches)
        tasks.extend(s.task for s in self._streams if s.task is not None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in list(self._streams):
            await self._end_stream(stream)  # its temporary file goes
        for item in list(self._items.values()):
            await self._close_file(item, force=True)

    # ----- queries ------------------------------------------------------------------

    def item(self, path: str) -> CacheItem | None:
        return self._items.get(path)

    def has(self, path: str) -> bool:
        return path in self._items

    def holds_local_changes(self, path: str) -> bool:
        """Whether the item's size and time beat the remote's (dirty or open)."""
        item = self._items.get(path)
        return item is not None and (item.dirty or item.opens > 0)

    def dirty_children(self, directory: str) -> list[CacheItem]:
        prefix = directory + "/" if directory else ""
        return [
            item
            for path, item in self._items.items()
            if item.dirty and path.startswith(prefix) and "/" not in path[len(prefix) :]
        ]

    def pending_uploads(self) -> int:
        return sum(1 for item in self._items.values() if item.dirty)

    def items(self) -> Iterable[CacheItem]:
        return self._items.values()

    # ----- opening and closing ------------------------------------------------------

    async def acquire(
        self, path: str, remote: Fingerprint | None, remote_mtime: float
    ) -> CacheItem:
        """Open the item of `path` (creating it), checking its data against the
        remote file's fingerprint (None: the file is not on the remote)."""
        item = self._items.get(path)
        now = self._now()
        if item is None:
            size = remote.size if remote is not None else 0
            item = CacheItem(CacheRecord(path, size, remote_mtime, now, RangeSet(), remote))
            self._items[path] = item
        elif item.dirty:
            if remote is not None and not (
                item.record.fingerprint and item.record.fingerprint.same_remote(remote)
            ):
                logger.info("{}: changed on the remote, but the local changes win", path)
        elif item.opens == 0 and not item.transferring:
            cached = item.record.fingerprint
            if remote is None or cached is None or not cached.same_remote(remote):
                logger.info("{}: changed on the remote, dropping the cached copy", path)
                self._forget_sequence(item)
                await self._stop_fetches(item)
                item.record = CacheRecord(
                    path, remote.size if remote else 0, remote_mtime, now, RangeSet(), remote
                )
                item.generation += 1
                item.version += 1
                item.users += 1
                try:
                    file = await self._open_file(item)
                    file.truncate(0)  # the old data goes, and its blocks with it
                    file.truncate(item.record.size)
                finally:
                    item.users -= 1
        if item.upload is not None and not item.transferring:
            # Used again: the upload waits for the last close.
            item.upload.cancel()
            item.upload = None
        item.opens += 1
        item.users += 1
        item.record.atime = now
        try:
            await self._open_file(item)
        except BaseException:
            item.opens -= 1
            item.users -= 1
            raise
        return item

    async def release(self, item: CacheItem) -> None:
        item.opens -= 1
        item.record.atime = self._now()
        if item.opens == 0:
            await self._stop_fetches(item)
            if not item.removed:
                if item.dirty:
                    if item.durable_version != item.version:
                        # "Dirty and complete": the data is durable before the record
                        # says so.
                        version = item.version
                        assert item.file is not None
                        await item.file.sync()
                        await self._save(item, durable=True)
                        item.durable_version = version
                    self._schedule(item, 0.0 if self._draining else self.options.write_back)
                elif item.saved_version != item.version:
                    await self._save(item, durable=False)
                else:
                    item.atime_saved = False  # saved later; a read alone costs no write
        item.users -= 1
        await self._close_file(item)

    async def _open_file(self, item: CacheItem) -> CacheFile:
        async with item.file_lock:
            if item.file is None:
                item.file = await self._store.open(item.path)
                if item.file.length() != item.size:
                    item.file.truncate(item.size)
            return item.file

    async def _close_file(self, item: CacheItem, *, force: bool = False) -> None:
        if item.users > 0 and not force:
            return
        async with item.file_lock:
            if item.users > 0 and not force:
                return  # opened again while this waited for the lock
            reader, item.reader = item.reader, None
            file, item.file = item.file, None
            if reader is not None:
                with contextlib.suppress(Exception):
                    await reader.close()
            if file is not None:
                await file.close()

    async def _save(self, item: CacheItem, *, durable: bool) -> None:
        if item.removed:
            return
        version = item.version
        complete = item.record.ranges.covers(0, item.size)
        await self._store.save_record(item.path, item.record.to_json(), durable=durable)
        item.saved_version = version
        item.dirty_on_disk = item.record.dirty
        item.saved_complete = complete
        item.atime_saved = True

    # ----- reading ------------------------------------------------------------------

    async def read(self, item: CacheItem, offset: int, size: int, ahead: int = 0) -> bytes:
        end = min(offset + size, item.size)
        if offset >= end:
            return b""
        if not item.record.ranges.covers(offset, end):
            await self._fill(item, offset, end, minimum=MIN_FETCH)
        if ahead > 0:
            item.ahead = (end, min(end + ahead, item.size))
            self._prefetch(item, *item.ahead)
        else:
            item.ahead = None  # a random read: no window to keep filled
        assert item.file is not None
        return item.file.pread(offset, end - offset)

    async def _fill(self, item: CacheItem, start: int, end: int, minimum: int = 0) -> None:
        """Make [start, end) present, fetching what is missing."""
        while True:
            end = min(end, item.size)
            gaps = item.record.ranges.missing(start, end) if start < end else []
            if not gaps:
                return
            waits: list[asyncio.Task[None]] = []
            for gap_start, gap_end in gaps:
                if minimum:
                    gap_end = max(gap_end, min(gap_start + minimum, item.size))
                self._start_fetches(item, gap_start, gap_end, limit=None)
                waits.extend(
                    f.task for f in item.fetches if f.start < gap_end and f.end > gap_start
                )
            # The loop re-checks after each round: a truncate may have changed what
            # is needed, and a fetch cancelled by another handle's close is redone.
            for result in await asyncio.gather(*waits, return_exceptions=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    raise result

    def _prefetch(self, item: CacheItem, start: int, end: int) -> None:
        # Memory bound: what is in flight (not yet on disk) stays under buffer-size.
        buffer = self.options.buffer_size
        limit = MAX_FETCH if buffer == UNLIMITED or buffer <= 0 else max(buffer, MAX_FETCH)
        if item.inflight_bytes() >= limit:
            return
        for gap_start, gap_end in item.record.ranges.missing(start, end):
            self._start_fetches(item, gap_start, gap_end, limit=limit)
            if item.inflight_bytes() >= limit:
                return

    def _piece(self) -> int:
        chunk = self.options.read_chunk_size
        return min(MAX_FETCH, chunk) if chunk > 0 else MAX_FETCH

    def _start_fetches(self, item: CacheItem, start: int, end: int, limit: int | None) -> None:
        """Start fetches for the parts of [start, end) not already in flight."""
        pos = start
        piece = self._piece()
        for fetch in sorted(item.fetches, key=lambda f: f.start):
            if fetch.end <= pos or fetch.start >= end:
                continue
            if fetch.start > pos:
                if not self._spawn_fetches(item, pos, fetch.start, piece, limit):
                    return
            pos = max(pos, fetch.end)
        if pos < end:
            self._spawn_fetches(item, pos, end, piece, limit)

    def _spawn_fetches(
        self, item: CacheItem, start: int, end: int, piece: int, limit: int | None
    ) -> bool:
        loop = asyncio.get_running_loop()
        while start < end:
            if limit is not None and item.inflight_bytes() >= limit:
                return False
            stop = min(end, start + piece)
            task = loop.create_task(self._fetch(item, start, stop))
            fetch = _Fetch(start, stop, task)
            item.fetches.append(fetch)
            task.add_done_callback(functools.partial(_fetch_done, item.fetches, fetch))
            start = stop
        return True

    async def _fetch(self, item: CacheItem, start: int, end: int) -> None:
        reader = await self._reader(item)
        data = await reader.read(start, end - start)
        if item.file is None:
            return  # closed meanwhile: nothing to keep it in
        expected = min(end, item.size)
        ranges = item.record.ranges
        if start + len(data) < expected and ranges.missing(start + len(data), expected):
            raise OSError(
                errno.EIO,
                f"{item.path}: the remote file is shorter than expected "
                f"({start + len(data)} < {expected}): it changed while being read",
            )
        # Only the bytes still missing: a write made while this was in flight wins.
        for gap_start, gap_end in ranges.missing(start, min(start + len(data), item.size)):
            item.file.pwrite(gap_start, data[gap_start - start : gap_end - start])
            ranges.add(gap_start, gap_end)
            item.version += 1
        if item.ahead is not None:
            # Keep the pipeline full between the reader's requests.
            _discard(item.fetches, start, end)
            self._prefetch(item, *item.ahead)

    async def _reader(self, item: CacheItem) -> RemoteReader:
        if item.reader is None:
            reader = await self._storage.open_reader(item.path)
            if item.reader is None:
                item.reader = reader
            else:
                await reader.close()
        return item.reader

    async def _stop_fetches(self, item: CacheItem) -> None:
        item.ahead = None
        tasks = [f.task for f in item.fetches]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----- changing -----------------------------------------------------------------

    async def write(self, item: CacheItem, offset: int, data: bytes) -> int:
        assert item.file is not None
        record = item.record
        size_before = record.size
        if offset > record.size:
            record.ranges.add(record.size, offset)  # the hole reads as zeros: present
        try:
            item.file.pwrite(offset, data)
        except BaseException:
            self._forget_sequence(item)  # what reached the data file is unknown
            raise
        record.ranges.add(offset, offset + len(data))
        record.size = max(record.size, offset + len(data))
        sequential = self._follow_write(item, offset, len(data), size_before)
        await self._modified(item, sequential=sequential)
        return len(data)

    async def truncate(self, item: CacheItem, size: int) -> None:
        assert item.file is not None
        record = item.record
        same_size = size == record.size
        if not same_size:
            self._forget_sequence(item)
        item.file.truncate(size)
        if size < record.size:
            record.ranges.truncate(size)
        else:
            record.ranges.add(record.size, size)
        record.size = size
        await self._modified(item, sequential=same_size and item.sequential_end is not None)

    def _follow_write(self, item: CacheItem, offset: int, length: int, size_before: int) -> bool:
        """Keep track of a sequential writer, and feed or start its stream.
        Returns whether the write continued the sequence. Never waits: this is
        the FUSE write path."""
        if offset == 0 and size_before == 0:
            self._forget_sequence(item)  # a new sequence: nothing before it counts
            item.sequential_end = length
            item.sequential_generation = item.generation
        elif item.sequential_end is not None and offset == item.sequential_end == size_before:
            item.sequential_end += length
        else:
            self._forget_sequence(item)
            return False
        stream = item.stream
        if stream is not None:
            stream.end = item.sequential_end
            stream.wakeup.set()
        elif (
            item.sequential_end >= STREAM_AFTER
            and not item.removed
            and len(self._streams) < max(1, self.options.transfers)
        ):
            self._start_stream(item, item.sequential_end)
        return True

    async def _modified(self, item: CacheItem, *, sequential: bool = False) -> None:
        """After a change of the content; `sequential`: the change kept the item's
        sequential run intact (its stream, if any, stays valid)."""
        still_sequential = sequential and item.sequential_generation == item.generation
        item.generation += 1
        if still_sequential:
            item.sequential_generation = item.generation
        item.version += 1
        item.record.mtime = self._now()
        item.record.atime = item.record.mtime
        if item.upload is not None:
            # Changed under a pending or running upload: it starts over after close.
            item.upload.cancel()
            item.upload = None
        item.record.dirty = True
        if not item.dirty_on_disk:
            item.dirty_on_disk = True  # one save, however many writes arrive meanwhile
            try:
                await self._save(item, durable=False)
            except BaseException:
                item.dirty_on_disk = False
                raise

    async def flush(self, item: CacheItem) -> None:
        """At close(2): record size and ranges, so a killed worker finds them.
        Not needed when the record on disk is dirty and was complete: the data
        file then tells everything (the common case of a file written whole)."""
        if item.saved_version == item.version:
            return
        if item.dirty_on_disk and item.saved_complete:
            return
        await self._save(item, durable=False)

    async def fsync(self, item: CacheItem) -> None:
        if item.file is not None:
            await item.file.sync()
        await self._save(item, durable=True)

    async def set_mtime(self, path: str, mtime: float) -> bool:
        """Record a new modification time; True if an upload will carry it to the
        remote (the item is dirty), False if the caller must set it there."""
        item = self._items.get(path)
        if item is None:
            return False
        item.record.mtime = mtime
        if not item.dirty:
            fp = item.record.fingerprint
            if fp is not None and fp.mtime is not None:
                item.record.fingerprint = Fingerprint(fp.size, mtime, fp.hash)
        # The time is not content: a stream stays valid (`tar` sets it after writing).
        still_sequential = item.sequential_generation == item.generation
        item.generation += 1
        if still_sequential:
            item.sequential_generation = item.generation
        item.version += 1
        if item.opens == 0:
            await self._save(item, durable=False)
        return item.dirty

    async def remove(self, path: str) -> None:
        """Forget `path` and every item under it: uploads stop, data goes (handles
        still open keep their data file until they close)."""
        prefix = path + "/"
        for item in [i for p, i in self._items.items() if p == path or p.startswith(prefix)]:
            await self._stop_upload(item)
            await self._end_streams(item)
            item.removed = True
            del self._items[item.path]
            await self._store.remove(item.path)

    async def pause_uploads(self, path: str) -> None:
        """Stop the uploads of `path` and everything under it (before a rename).
        Streams are aborted: their writers target the old name."""
        prefix = path + "/"
        for item in [i for p, i in self._items.items() if p == path or p.startswith(prefix)]:
            await self._stop_upload(item)
            await self._end_streams(item)

    def resume_uploads(self, path: str) -> None:
        prefix = path + "/"
        for p, item in self._items.items():
            if (p == path or p.startswith(prefix)) and item.dirty and item.opens == 0:
                self._schedule(item, self.options.write_back)

    async def rename(self, src: str, dst: str) -> None:
        """Move the item of `src`, or all items under the directory `src`, to
        `dst`; their pending uploads then go to the new name."""
        await self.pause_uploads(src)
        if dst != src and not dst.startswith(src + "/"):
            await self.remove(dst)
        prefix = src + "/"
        moved = [i for p, i in self._items.items() if p == src or p.startswith(prefix)]
        if not moved:
            return
        await self._store.rename(src, dst)
        for item in moved:
            del self._items[item.path]
        for item in moved:
            item.record.path = dst + item.path[len(src) :]
            self._items[item.path] = item
            item.generation += 1
            item.version += 1
            await self._save(item, durable=item.dirty)
        self.resume_uploads(dst)

    # ----- write-back ---------------------------------------------------------------

    def _schedule(self, item: CacheItem, delay: float) -> None:
        if item.upload is not None and not item.upload.done():
            if item.transferring:
                return  # running on the current data
            item.upload.cancel()
        item.upload = asyncio.get_running_loop().create_task(self._upload_loop(item, delay))

    async def _stop_upload(self, item: CacheItem) -> None:
        task, item.upload = item.upload, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _upload_loop(self, item: CacheItem, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        attempt = 0
        while True:
            try:
                async with self._transfers:
                    await self._upload(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                wait = upload_retry_delay(attempt, base=self._retry_base)
                logger.error(
                    "{}: upload failed (attempt {}), retrying in {:g} s: {}",
                    item.path,
                    attempt,
                    wait,
                    exc,
                )
                await asyncio.sleep(wait)

    async def _upload(self, item: CacheItem) -> None:
        if not item.dirty or item.removed:
            return
        path, generation = item.path, item.generation
        stream = self._claim_stream(item)
        streamed = False
        item.users += 1
        item.transferring = True
        try:
            await self._open_file(item)
            size = item.size
            await self._fill(item, 0, size)  # parts never downloaded come from the remote
            file = item.file
            assert file is not None
            started = time.monotonic()
            if stream is not None:
                streamed = await self._commit_stream(stream, size)
            if not streamed:
                try:
                    await self._send(path, file, size)
                except FileNotFoundError:
                    # Its directory went from the remote meanwhile: like rclone, make
                    # it again (and its parents) and upload once more.
                    parent = path.rpartition("/")[0]
                    if not parent:
                        raise
                    logger.warning(
                        "{}: the remote directory {} is gone: recreating it", path, parent
                    )
                    await self._make_dirs(parent)
                    await self._send(path, file, size)
            fingerprint = await self._after_upload(path, size, item.record.mtime)
        finally:
            if stream is not None:
                await self._end_stream(stream)  # nothing left to do once committed
            item.transferring = False
            item.users -= 1
            await self._close_file(item)
        logger.debug(
            "{}: uploaded {} bytes in {:.2f} s{}",
            path,
            size,
            time.monotonic() - started,
            " (streamed while written)" if streamed else "",
        )
        self.uploads_done += 1
        if item.generation != generation or item.removed:
            return  # changed meanwhile: the new content has its own upload coming
        item.record.dirty = False
        item.record.fingerprint = fingerprint
        item.upload = None
        await self._save(item, durable=False)
        if self._on_uploaded is not None:
            self._on_uploaded(path, item.record)

    async def _send(self, path: str, file: CacheFile, size: int) -> None:
        """Upload `size` bytes of the data file to `path`."""
        writer = await self._storage.open_writer(path)
        try:
            pos = 0
            while pos < size:
                data = file.pread(pos, min(UPLOAD_PIECE, size - pos))
                if not data:
                    raise OSError(errno.EIO, f"{path}: cache file shorter than {size}")
                await writer.write(data)
                pos += len(data)
            await writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(writer.abort())
            raise

    # ----- streams: uploads that follow a sequential writer ---------------------------

    def _start_stream(self, item: CacheItem, end: int) -> None:
        stream = _Stream(item, end)
        stream.task = asyncio.get_running_loop().create_task(self._stream(item, stream))
        item.stream = stream
        self._streams.add(stream)
        # Removed when done, even if cancelled before it ever ran.
        stream.task.add_done_callback(lambda _task: self._streams.discard(stream))

    async def _stream(self, item: CacheItem, stream: _Stream) -> None:
        """Send the sequential bytes as they are written, until claimed and caught
        up. A failure aborts the writer and is left to the regular upload."""
        item.users += 1  # keeps the data file open
        try:
            file = await self._open_file(item)
            writer = stream.writer = await self._storage.open_writer(stream.path)
            while not (stream.claimed and stream.sent >= stream.end):
                if stream.sent >= stream.end:
                    stream.wakeup.clear()
                    await stream.wakeup.wait()
                    continue
                data = file.pread(stream.sent, min(UPLOAD_PIECE, stream.end - stream.sent))
                if not data:
                    raise OSError(errno.EIO, f"{stream.path}: cache file shorter than written")
                await writer.write(data)
                stream.sent += len(data)
        except BaseException as exc:
            stream.failed = True
            writer_left, stream.writer = stream.writer, None
            if writer_left is not None:
                await _abort_quietly(writer_left)
            if not isinstance(exc, Exception):
                raise
            logger.info(
                "{}: the upload following the writes failed ({!r}); "
                "the file is uploaded whole at write-back",
                stream.path,
                exc,
            )
        finally:
            item.users -= 1
            await self._close_file(item)

    def _forget_sequence(self, item: CacheItem) -> None:
        """The item is no longer written in sequence: abort its stream (in the
        background, so the FUSE write path never waits for the remote)."""
        item.sequential_end = None
        stream, item.stream = item.stream, None
        if stream is not None and stream.task is not None:
            stream.task.cancel()  # the task aborts its writer

    async def _end_streams(self, item: CacheItem) -> None:
        """Forget the item's sequence and wait until every stream of it has
        aborted, so no temporary file is left behind (or moved by a rename)."""
        self._forget_sequence(item)
        for stream in [s for s in self._streams if s.item is item]:
            await self._end_stream(stream)

    async def _end_stream(self, stream: _Stream) -> None:
        """Stop the stream and abort its writer, unless committed already."""
        if stream.task is not None:
            stream.task.cancel()
            await asyncio.gather(stream.task, return_exceptions=True)
        writer, stream.writer = stream.writer, None
        if writer is not None:
            await _abort_quietly(writer)

    def _claim_stream(self, item: CacheItem) -> _Stream | None:
        """Take the item's stream for the upload starting now, if it carries
        exactly the item's content; otherwise abort it."""
        stream, item.stream = item.stream, None
        if stream is None:
            return None
        intact = (
            not stream.failed
            and stream.path == item.path
            and item.sequential_end == item.size == stream.end
            and item.sequential_generation == item.generation
            and item.record.ranges.covers(0, item.size)
        )
        if not intact:
            if stream.task is not None:
                stream.task.cancel()
            return None
        stream.claimed = True  # no write comes to it any more: it sends the tail and stops
        stream.wakeup.set()
        return stream

    async def _commit_stream(self, stream: _Stream, size: int) -> bool:
        """Wait for the claimed stream to send its tail, then commit its writer.
        False if it failed: nothing of it is left, and the caller sends the file
        the usual way."""
        assert stream.task is not None
        # Not awaited directly: a cancel meant for the stream alone must not look
        # like a cancel of the upload. A cancelled upload ends the stream itself.
        await asyncio.wait([stream.task])
        writer, stream.writer = stream.writer, None
        if writer is None or stream.failed or stream.sent != size:
            if writer is not None:
                await _abort_quietly(writer)
            return False
        try:
            await writer.commit()
        except BaseException as exc:
            await _abort_quietly(writer)
            if not isinstance(exc, Exception):
                raise
            logger.info(
                "{}: committing the upload that followed the writes failed ({!r}); "
                "sending the file again",
                stream.path,
                exc,
            )
            return False
        return True

    async def _make_dirs(self, directory: str) -> None:
        """mkdir -p on the remote."""
        parts = directory.split("/")
        for i in range(1, len(parts) + 1):
            with contextlib.suppress(FileExistsError):
                await self._storage.mkdir("/".join(parts[:i]))

    async def _after_upload(self, path: str, size: int, mtime: float) -> Fingerprint:
        """Set the modification time, then check the upload (unless --no-checksum):
        the remote must report the size uploaded. Returns the new fingerprint."""
        mtime_set = False
        if not self.options.no_modtime:
            try:
                await self._storage.set_mtime(path, mtime)
                mtime_set = True
            except OSError as exc:
                logger.warning("{}: could not set the modification time: {!r}", path, exc)
        if self.options.no_checksum:
            return Fingerprint(size, mtime if mtime_set else None, None)
        entry = await self._storage.stat(path)
        if entry.size != size:
            raise OSError(
                errno.EIO, f"{path}: the remote holds {entry.size} bytes after uploading {size}"
            )
        return Fingerprint(entry.size, entry.mtime, None)

    # ----- eviction -----------------------------------------------------------------

    async def _clean_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.cache_poll_interval)
            try:
                await self.clean()
            except Exception:
                logger.exception("cache cleaning failed")

    async def clean(self) -> list[str]:
        """Evict what `choose_evictions` picks; returns the paths removed."""
        usages = [
            CacheItemUsage(
                path=item.path,
                present_bytes=self._store.present_bytes(item.path),
                last_access=item.record.atime,
                open=item.users > 0,
                dirty=item.dirty or item.upload is not None,
            )
            for item in self._items.values()
        ]
        chosen = choose_evictions(
            usages, self._now(), self.options.cache_max_age, self.options.cache_max_size
        )
        for path in chosen:
            item = self._items.get(path)
            if item is None or item.users > 0 or item.dirty:
                continue
            logger.debug("{}: evicted from the cache", path)
            del self._items[path]
            item.removed = True
            await self._store.remove(path)
        return chosen


async def _abort_quietly(writer: RemoteWriter) -> None:
    # Shielded: a cancelled caller must still not leave a temporary file behind.
    with contextlib.suppress(Exception):
        await asyncio.shield(writer.abort())


def _discard(fetches: list[_Fetch], start: int, end: int) -> None:
    for fetch in fetches:
        if fetch.start == start and fetch.end == end:
            fetches.remove(fetch)
            return


def _fetch_done(fetches: list[_Fetch], fetch: _Fetch, _task: asyncio.Task[None]) -> None:
    with contextlib.suppress(ValueError):
        fetches.remove(fetch)
    # A prefetch nobody waited for: its error is seen again by the read that needs
    # the range; mark it retrieved so asyncio does not report it.
    if not fetch.task.cancelled():
        fetch.task.exception()
