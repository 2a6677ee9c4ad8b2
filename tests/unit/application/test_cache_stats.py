"""The cache's read-only statistics: the upload queue with its states and ids,
progress, counters of failures and retries, and queue-set-expiry."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs import ROOT_INODE, Vfs
from application.vfs.cache.writeback import WriteBack
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage
from tests.unit.application.test_cache_writeback import ManualClock, Uploads, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_queue_shows_each_upload_with_its_state() -> None:
    uploads, clock = Uploads(), ManualClock()
    wb = WriteBack[str](uploads, transfers=1, retry_base=1.0, sleep=clock.sleep)
    uploads.gate.clear()
    wb.schedule("a", 0.0)
    wb.schedule("b", 10.0)
    await settle()
    states = {key: (entry.state, entry.id) for key, entry in wb.entries()}
    assert states == {"a": ("uploading", 1), "b": ("waiting", 2)}
    await clock.advance(10.0)
    assert dict((k, e.state) for k, e in wb.entries())["b"] == "queued"  # no free slot
    assert wb.key_of(2) == "b" and wb.key_of(99) is None
    uploads.gate.set()
    await settle()
    assert wb.entries() == []


async def test_failures_and_retries_are_counted_with_the_last_error() -> None:
    uploads, clock = Uploads(), ManualClock()
    uploads.failures = 2
    wb = WriteBack[str](uploads, transfers=1, retry_base=1.0, sleep=clock.sleep)
    wb.schedule("f", 0.0)
    await settle()
    assert wb.counters.failed == 1 and wb.counters.retried == 0
    assert [e.state for _, e in wb.entries()] == ["retrying"]
    assert wb.counters.last_error == "f: injected" and wb.counters.last_error_at is not None
    await clock.advance(60.0)
    await clock.advance(60.0)
    assert uploads.done == ["f"]
    assert (wb.counters.failed, wb.counters.retried) == (2, 2)


async def _vfs(tmp_path: Path, storage: MemoryStorage, **kw: object) -> Vfs:
    options = VfsOptions(cache_mode=CacheMode.WRITES, write_back=3600.0, dir_cache_time=60.0)
    vfs = Vfs(storage, options, cache_store=DiskCacheStore(str(tmp_path / "cache")))
    await vfs.start()
    return vfs


async def _write(vfs: Vfs, name: str, data: bytes) -> None:
    fh, _ = await vfs.create(ROOT_INODE, name, os.O_WRONLY | os.O_CREAT)
    await vfs.write(fh, 0, data)
    await vfs.release(fh)


async def test_stats_and_queue_set_expiry(tmp_path: Path) -> None:
    storage = MemoryStorage()
    vfs = await _vfs(tmp_path, storage)
    try:
        await _write(vfs, "later", b"x" * 1000)
        stats = vfs.cache.stats()
        assert (stats.items, stats.dirty_files, stats.dirty_bytes) == (1, 1, 1000)
        (queued,) = stats.queue
        assert queued.path == "later" and queued.state == "waiting" and queued.size == 1000
        assert queued.expiry > 3500 and queued.bytes_sent == 0
        assert stats.limit_bytes is None and stats.used_bytes >= 1000  # disk blocks
        assert not vfs.cache.expire_upload(queued.id + 100, 0)
        assert vfs.cache.expire_upload(queued.id, 0)
        for _ in range(200):
            if vfs.cache.stats().dirty_files == 0:
                break
            await asyncio.sleep(0.01)
        after = vfs.cache.stats()
        assert after.dirty_files == 0 and after.queue == ()
        assert (after.uploads.completed, after.uploads.bytes_uploaded) == (1, 1000)
        assert bytes(storage.tree.files["later"].data) == b"x" * 1000
    finally:
        await vfs.stop()


async def test_reads_count_cache_hits_and_misses(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.tree.put("r", b"y" * 5000)
    vfs = await _vfs(tmp_path, storage)
    try:
        attr = await vfs.lookup(ROOT_INODE, "r")
        fh = await vfs.open(attr.inode, os.O_RDWR)
        assert await vfs.read(fh, 0, 5000) == b"y" * 5000
        assert await vfs.read(fh, 0, 100) == b"y" * 100
        await vfs.release(fh)
        reads = vfs.cache.stats().reads
        assert (reads.hits, reads.misses) == (1, 1)
    finally:
        await vfs.stop()
