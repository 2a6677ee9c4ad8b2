"""One cache item alone: its opens and closes, reads, writes and truncates, and
when it saves its record."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs.cache.item import CacheItem
from domain.cache_record import CacheRecord
from domain.fingerprint import Fingerprint
from domain.ranges import RangeSet
from domain.volume import VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingStore(DiskCacheStore):
    """Counts the record saves, and which were durable."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.saves: list[bool] = []

    async def save_record(self, path: str, record: bytes, *, durable: bool) -> None:
        self.saves.append(durable)
        await super().save_record(path, record, durable=durable)


def new_item(
    tmp_path: Path, storage: MemoryStorage, path: str = "f", size: int = 0
) -> tuple[CacheItem, CountingStore]:
    store = CountingStore(str(tmp_path / "cache"))
    fingerprint = Fingerprint(size, 1.0, None) if size else None
    record = CacheRecord(path, size, 1.0, 1.0, RangeSet(), fingerprint)
    # Handles close at once here; --vfs-handle-caching has its own test.
    return CacheItem(record, store, storage, VfsOptions(handle_caching=0)), store


def saved(tmp_path: Path, path: str = "f") -> CacheRecord:
    return CacheRecord.from_json((tmp_path / "cache" / "meta" / path).read_bytes())


async def test_reads_download_what_is_missing_and_keep_it(tmp_path: Path) -> None:
    storage = MemoryStorage()
    content = os.urandom(1024 * 1024)
    storage.tree.put("f", content)
    item, _ = new_item(tmp_path, storage, size=len(content))
    await item.open(now=2.0)
    assert await item.read(1000, 10) == content[1000:1010]
    assert item.record.ranges.covers(1000, 1010)
    assert await item.read(len(content) - 5, 100) == content[-5:]  # short at the end
    assert await item.read(len(content), 10) == b""
    assert not await item.close(now=3.0)  # clean: no upload due
    assert saved(tmp_path).ranges.covers(1000, 1010)


async def test_a_download_never_overwrites_a_write(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.tree.put("f", b"remote data")
    item, _ = new_item(tmp_path, storage, size=11)
    await item.open(now=2.0)
    item.write(0, b"LOCAL")
    item.changed(now=3.0)
    item.accept_download(0, 11, b"remote data")
    assert await item.read(0, 11) == b"LOCALe data"


async def test_the_first_change_saves_a_dirty_record_once(tmp_path: Path) -> None:
    item, store = new_item(tmp_path, MemoryStorage())
    await item.open(now=2.0)
    for offset in range(3):
        item.write(offset, b"x")
        item.changed(now=3.0)
        await item.record_dirty()
    assert store.saves == [False]
    assert saved(tmp_path).dirty
    assert item.holds_local_changes and item.generation == 3


async def test_the_last_close_of_a_dirty_item_makes_it_durable_and_due(tmp_path: Path) -> None:
    item, store = new_item(tmp_path, MemoryStorage())
    await item.open(now=2.0)
    await item.open(now=2.0)
    item.write(0, b"hello")
    item.changed(now=3.0)
    await item.record_dirty()
    assert not await item.close(now=4.0)  # another handle is open
    assert await item.close(now=4.0)
    assert store.saves == [False, True]
    record = saved(tmp_path)
    assert record.dirty and record.size == 5 and item.file is None


async def test_flush_is_skipped_while_the_data_file_tells_everything(tmp_path: Path) -> None:
    item, store = new_item(tmp_path, MemoryStorage())
    await item.open(now=2.0)
    item.write(0, b"whole")
    item.changed(now=3.0)
    await item.record_dirty()
    item.write(5, b" file")
    item.changed(now=3.0)
    await item.flush()
    assert store.saves == [False]  # dirty and complete on disk already
    item.truncate(20)  # a hole past the end: still complete
    item.changed(now=3.0)
    await item.flush()
    assert len(store.saves) == 1


async def test_truncate_shrinks_and_grows_with_zeros(tmp_path: Path) -> None:
    item, _ = new_item(tmp_path, MemoryStorage())
    await item.open(now=2.0)
    item.write(0, b"0123456789")
    item.truncate(4)
    item.truncate(6)
    item.changed(now=3.0)
    assert item.size == 6
    assert await item.read(0, 100) == b"0123\0\0"


async def test_reset_drops_the_data_for_the_new_remote_file(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.tree.put("f", b"new")
    item, _ = new_item(tmp_path, storage, size=3)
    await item.open(now=2.0)
    item.write(0, b"old")
    await item.close(now=2.0)
    generation = item.generation
    await item.reset(CacheRecord("f", 3, 5.0, 5.0, RangeSet(), Fingerprint(3, 5.0, None)))
    assert item.generation == generation + 1 and not item.dirty
    await item.open(now=6.0)
    assert await item.read(0, 3) == b"new"


async def test_set_mtime_of_a_clean_item_keeps_its_fingerprint_current(tmp_path: Path) -> None:
    item, _ = new_item(tmp_path, MemoryStorage(), size=3)
    item.set_mtime(7.0)
    assert item.mtime == 7.0
    assert item.record.fingerprint == Fingerprint(3, 7.0, None)


async def test_handle_caching_keeps_the_closed_file_open_for_a_reopen(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "cache"))
    record = CacheRecord("f", 0, 1.0, 1.0, RangeSet(), None)
    item = CacheItem(record, store, MemoryStorage(), VfsOptions(handle_caching=0.05))
    await item.open(now=2.0)
    kept = item.file
    await item.close(now=3.0)
    assert item.file is kept is not None  # still open: a reopen reuses it
    await item.open(now=4.0)
    assert item.file is kept
    await item.close(now=5.0)
    deadline = asyncio.get_running_loop().time() + 10
    while item.file is not None:  # closed once the grace period has passed
        assert asyncio.get_running_loop().time() < deadline, "the file stayed open"
        await asyncio.sleep(0.01)
