"""The cleaner alone: it evicts what `choose_evictions` picks, never an item that
is open, dirty or waiting for its upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs.cache.cleaner import Cleaner
from application.vfs.cache.item import CacheItem
from application.vfs.cache.registry import ItemRegistry
from domain.cache_record import CacheRecord
from domain.ranges import RangeSet
from domain.volume import VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_old_items_go_unless_open_dirty_or_pending(tmp_path: Path) -> None:
    options = VfsOptions(cache_max_age=100.0)
    store = DiskCacheStore(str(tmp_path / "cache"))
    registry = ItemRegistry(store, MemoryStorage(), options)
    for name in ("old", "open", "dirty", "pending", "recent"):
        atime = 950.0 if name == "recent" else 1.0
        item = registry.create(CacheRecord(name, 0, 1.0, atime, RangeSet()))
        await item.save(durable=False)
    opened = registry.get("open")
    assert opened is not None
    await opened.open(now=1.0)
    dirty = registry.get("dirty")
    assert dirty is not None
    dirty.record.dirty = True
    evicted: list[str] = []

    async def evict(item: CacheItem) -> None:
        evicted.append(item.path)
        await registry.remove(item)

    cleaner = Cleaner(
        registry,
        store,
        options,
        upload_pending=lambda item: item.path == "pending",
        evict=evict,
        wall_clock=lambda: 1000.0,
    )
    await cleaner.clean()
    assert evicted == ["old"]
    assert sorted(i.path for i in registry) == ["dirty", "open", "pending", "recent"]
    await opened.close(now=1.0)  # closed again, it may go once old enough
    await cleaner.clean()
    assert evicted == ["old", "open"]
