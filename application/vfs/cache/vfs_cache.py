"""The VFS file cache: its parts put together, in the order each operation needs.

Write-back: when the last handle of a dirty item closes, its upload is due
`write_back` seconds later (see `writeback`). Opening the item again postpones a
pending upload; changing it cancels a running one (the upload starts over after
the next close). `drain` uploads everything now and waits, which is what a
worker does after its mount has gone. Items found dirty on disk at `start` (a
worker that was killed) are uploaded at once.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from loguru import logger

from application.ports import CacheStore, RemoteStorage
from application.vfs.cache.cleaner import Cleaner
from application.vfs.cache.item import CacheItem
from application.vfs.cache.registry import ItemRegistry
from application.vfs.cache.stats import CacheStats, QueuedUpload
from application.vfs.cache.streams import Streams
from application.vfs.cache.upload import UploadedCallback, Uploader
from application.vfs.cache.writeback import WriteBack
from domain.cache_record import CacheRecord
from domain.fingerprint import Fingerprint
from domain.ranges import RangeSet
from domain.volume import UNLIMITED, VfsOptions

# How long an operation that needs a file on the remote waits for its upload.
UPLOAD_NOW_TIMEOUT = 60.0


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
        self.options = options
        self._now = wall_clock
        self._items = ItemRegistry(store, storage, options)
        self._streams = Streams(storage, options.transfers)
        self._uploader = Uploader(storage, options, self._streams, on_uploaded)
        self._write_back = WriteBack[CacheItem](
            self._uploader.upload,
            transfers=options.transfers,
            name=lambda item: item.path,
            retry_base=retry_base,
        )
        self._cleaner = Cleaner(
            self._items,
            store,
            options,
            upload_pending=self._write_back.pending,
            evict=self._evict,
            wall_clock=wall_clock,
        )
        self._draining = False

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
        await self._items.load()
        dirty = [item for item in self._items if item.dirty]
        if dirty:
            logger.info("{} file(s) in the cache were not uploaded yet: uploading", len(dirty))
        for item in dirty:
            self._write_back.schedule(item, 0.0)
        self._cleaner.start()

    async def drain(self) -> None:
        """Upload every dirty item now and wait for all of them; retries go on
        until they succeed or the caller is cancelled (the data stays on disk,
        recorded dirty, for the next start)."""
        self._draining = True
        try:
            while True:
                pending = [i for i in self._items if i.dirty and not i.removed]
                if not pending:
                    break
                logger.info("uploading {} file(s)", len(pending))
                for item in pending:
                    self._write_back.schedule(item, 0.0)  # a transferring one goes on
                tasks = [t for t in map(self._write_back.task, pending) if t is not None]
                # Shielded: a drain given up because the volume is mounted again
                # leaves the uploads running (stop() is what cancels them).
                await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)
            await self.clean()
            for item in self._items:
                await item.save_access_time()
        finally:
            self._draining = False  # mounted again: write-back waits its delay again

    async def stop(self) -> None:
        """Cancel background work (pending uploads stay recorded on disk)."""
        await self._cleaner.stop()
        tasks = self._write_back.tasks()
        for item in self._items:
            tasks.extend(item.downloads.tasks())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._streams.stop()  # their temporary files go
        for item in self._items:
            await item.close_file(force=True)

    async def clean(self) -> list[str]:
        return await self._cleaner.clean()

    # ----- queries ------------------------------------------------------------------

    def item(self, path: str) -> CacheItem | None:
        return self._items.get(path)

    def has(self, path: str) -> bool:
        return path in self._items

    def holds_local_changes(self, path: str) -> bool:
        """Whether the item's size and time beat the remote's (dirty or open)."""
        item = self._items.get(path)
        return item is not None and item.holds_local_changes

    def dirty_children(self, directory: str) -> list[CacheItem]:
        return self._items.dirty_children(directory)

    def pending_uploads(self) -> int:
        return sum(1 for item in self._items if item.dirty)

    def items(self) -> Iterable[CacheItem]:
        return list(self._items)

    # ----- statistics (read only) -------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot of the cache and its upload queue."""
        now = time.monotonic()
        queue = []
        for item, entry in self._write_back.entries():
            progress = self._uploader.progress.get(item.path)
            sent = progress.bytes_sent if progress is not None else 0
            elapsed = now - entry.started_at if entry.started_at is not None else 0.0
            queue.append(
                QueuedUpload(
                    id=entry.id,
                    path=item.path,
                    size=item.size,
                    state=entry.state,
                    age=now - entry.scheduled_at,
                    expiry=max(0.0, entry.due_at - now),
                    attempts=entry.attempts,
                    bytes_sent=sent,
                    rate=sent / elapsed if elapsed > 0 and entry.state == "uploading" else 0.0,
                )
            )
        dirty = [item for item in self._items if item.dirty]
        counters = replace(
            self._write_back.counters,
            completed=self._uploader.completed,
            bytes_uploaded=self._uploader.bytes_uploaded,
        )
        limit = self.options.cache_max_size
        return CacheStats(
            items=len(self._items),
            dirty_files=len(dirty),
            dirty_bytes=sum(item.size for item in dirty),
            used_bytes=sum(self._store.present_bytes(item.path) for item in self._items),
            limit_bytes=None if limit == UNLIMITED else limit,
            queue=tuple(sorted(queue, key=lambda q: q.id)),
            uploads=counters,
            reads=replace(self._items.read_counters),
        )

    def expire_upload(self, upload_id: int, expiry: float) -> bool:
        """rclone's `vfs/queue-set-expiry`: the queued upload `upload_id` becomes
        due `expiry` seconds from now (0: at once). False if there is no such
        upload waiting (one already sending is left alone)."""
        item = self._write_back.key_of(upload_id)
        if item is None or self._write_back.transferring(item):
            return False
        self._write_back.schedule(item, max(0.0, expiry))
        return True

    # ----- opening and closing ------------------------------------------------------

    async def acquire(
        self, path: str, remote: Fingerprint | None, remote_mtime: float
    ) -> CacheItem:
        """Open the item of `path` (creating it), checking its data against the
        remote file's fingerprint (None: the file is not on the remote)."""
        item = self._items.get(path)
        now = self._now()
        size = remote.size if remote is not None else 0
        if item is None:
            item = self._items.create(
                CacheRecord(path, size, remote_mtime, now, RangeSet(), remote)
            )
        elif item.dirty:
            if remote is not None and not (
                item.record.fingerprint and item.record.fingerprint.same_remote(remote)
            ):
                logger.info("{}: changed on the remote, but the local changes win", path)
        elif item.opens == 0 and not self._write_back.transferring(item):
            cached = item.record.fingerprint
            if remote is None or cached is None or not cached.same_remote(remote):
                logger.info("{}: changed on the remote, dropping the cached copy", path)
                self._streams.forget(item)
                await item.reset(CacheRecord(path, size, remote_mtime, now, RangeSet(), remote))
        self._write_back.postpone(item)  # used again: the upload waits for the last close
        await item.open(now)
        return item

    async def release(self, item: CacheItem) -> None:
        if await item.close(self._now()):
            self._write_back.schedule(item, 0.0 if self._draining else self.options.write_back)

    # ----- changing -------------------------------------------------------

    async def write(self, item: CacheItem, offset: int, data: bytes) -> int:
        size_before = item.size
        try:
            item.write(offset, data)
        except BaseException:
            self._streams.forget(item)  # what reached the data file is unknown
            raise
        sequential = self._streams.follow_write(item, offset, len(data), size_before)
        await self._changed(item, sequential=sequential)
        return len(data)

    async def truncate(self, item: CacheItem, size: int) -> None:
        same_size = size == item.size
        if not same_size:
            self._streams.forget(item)
        item.truncate(size)
        await self._changed(item, sequential=same_size and self._streams.is_sequential(item))

    async def _changed(self, item: CacheItem, *, sequential: bool) -> None:
        generation = item.generation
        # Changed under a pending or running upload: it starts over after close.
        self._write_back.cancel(item)
        item.changed(self._now())
        self._streams.changed(item, generation, sequential=sequential)
        await item.record_dirty()

    async def set_mtime(self, path: str, mtime: float) -> bool:
        """Record a new modification time; True if an upload will carry it to the
        remote (the item is dirty), False if the caller must set it there."""
        item = self._items.get(path)
        if item is None:
            return False
        generation = item.generation
        item.set_mtime(mtime)
        # The time is not content: a stream stays valid (`tar` sets it after writing).
        self._streams.changed(item, generation, sequential=True)
        if item.opens == 0:
            await item.save(durable=False)
        return item.dirty

    # ----- renames and removals -------------------------------------------------------

    async def remove(self, path: str) -> None:
        """Forget `path` and every item under it: uploads stop, data goes (handles
        still open keep their data file until they close)."""
        for item in self._items.under(path):
            await self._write_back.stop(item)
            await self._streams.end(item)
            await self._items.remove(item)

    async def pause_uploads(self, path: str) -> None:
        """Stop the uploads of `path` and everything under it (before a rename).
        Streams are aborted: their writers target the old name."""
        for item in self._items.under(path):
            await self._write_back.stop(item)
            await self._streams.end(item)

    def resume_uploads(self, path: str) -> None:
        for item in self._items.under(path):
            if item.dirty and item.opens == 0:
                self._write_back.schedule(item, self.options.write_back)

    async def rename(self, src: str, dst: str) -> None:
        """Move the item of `src`, or all items under the directory `src`, to
        `dst`; their pending uploads then go to the new name."""
        await self.pause_uploads(src)
        if dst != src and not dst.startswith(src + "/"):
            await self.remove(dst)
        if await self._items.rename(src, dst):
            self.resume_uploads(dst)

    async def upload_now(self, path: str) -> None:
        """Upload the changes of `path` at once, not after --vfs-write-back,
        and wait for them (a hard link is made to what the remote holds).
        EBUSY while the file is open or the upload keeps failing."""
        item = self._items.get(path)
        if item is None or not item.dirty:
            return
        if item.opens > 0:
            raise OSError(errno.EBUSY, f"{path!r} is open for writing")
        if not self._write_back.transferring(item):
            self._write_back.schedule(item, 0.0)
        task = self._write_back.task(item)
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=UPLOAD_NOW_TIMEOUT)
            if not done:
                raise OSError(errno.EBUSY, f"{path!r}: its upload is still running")

    async def _evict(self, item: CacheItem) -> None:
        self._streams.forget(item)
        await self._items.remove(item)
