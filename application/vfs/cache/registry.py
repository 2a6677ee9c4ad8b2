"""The cache's items by path: loaded (and recovered) from the store at start,
created on first open, moved by renames and dropped by removals."""

from __future__ import annotations

from collections.abc import Iterator

from loguru import logger

from application.ports import CacheStore, RemoteStorage
from application.vfs.cache.item import CacheItem
from application.vfs.cache.stats import ReadCounters
from domain.cache_record import CacheRecord
from domain.volume import VfsOptions


class ItemRegistry:
    def __init__(self, store: CacheStore, storage: RemoteStorage, options: VfsOptions) -> None:
        self._store = store
        self._storage = storage
        self._options = options
        self._items: dict[str, CacheItem] = {}
        self.read_counters = ReadCounters()  # shared by every item, for the stats

    def get(self, path: str) -> CacheItem | None:
        return self._items.get(path)

    def __contains__(self, path: str) -> bool:
        return path in self._items

    def __iter__(self) -> Iterator[CacheItem]:
        # Over a copy: callers remove or move items as they go.
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def create(self, record: CacheRecord) -> CacheItem:
        item = CacheItem(
            record, self._store, self._storage, self._options, read_counters=self.read_counters
        )
        self._items[record.path] = item
        return item

    def under(self, path: str) -> list[CacheItem]:
        """The item of `path` and every item under the directory `path`."""
        prefix = path + "/"
        return [i for p, i in self._items.items() if p == path or p.startswith(prefix)]

    def dirty_children(self, directory: str) -> list[CacheItem]:
        prefix = directory + "/" if directory else ""
        return [
            item
            for path, item in self._items.items()
            if item.dirty and path.startswith(prefix) and "/" not in path[len(prefix) :]
        ]

    async def load(self) -> None:
        """Read every record in the store, checking it against its data file."""
        for path, raw in await self._store.load_records():
            await self._load(path, raw)

    async def _load(self, path: str, raw: bytes) -> None:
        try:
            record = CacheRecord.from_json(raw)
        except ValueError as exc:
            # Its data may be the only copy of a write, or stale: neither upload it
            # over the remote's (possibly good) file nor delete it.
            kept = await self._store.set_aside(path)
            logger.error(
                "{}: damaged cache record ({}); the item is left out of the cache and not "
                "uploaded; its data and record were moved to {}",
                path,
                exc,
                kept,
            )
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
        self.create(record).mark_loaded()

    async def remove(self, item: CacheItem) -> None:
        """Forget the item and delete its data (handles still open keep their
        data file until they close)."""
        item.removed = True
        if self._items.get(item.path) is item:
            del self._items[item.path]
        await self._store.remove(item.path)
        await item.close_file()  # a closed file kept open (--vfs-handle-caching) goes now

    async def rename(self, src: str, dst: str) -> list[CacheItem]:
        """Move the item of `src`, or every item under the directory `src`, to
        `dst` (whose own items the caller removed first); returns those moved."""
        moved = self.under(src)
        if not moved:
            return []
        await self._store.rename(src, dst)
        for item in moved:
            del self._items[item.path]
        for item in moved:
            self._items[dst + item.path[len(src) :]] = item
            await item.moved_to(dst + item.path[len(src) :])
        return moved
