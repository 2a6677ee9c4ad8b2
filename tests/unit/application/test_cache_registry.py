"""The registry of items alone: loading and recovering records, renames and
removals."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs.cache.registry import ItemRegistry
from domain.cache_record import CacheRecord
from domain.ranges import RangeSet
from domain.volume import VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def registry(tmp_path: Path) -> ItemRegistry:
    return ItemRegistry(DiskCacheStore(str(tmp_path / "cache")), MemoryStorage(), VfsOptions())


async def put(reg: ItemRegistry, path: str, data: bytes, *, dirty: bool) -> None:
    """An item as a worker leaves it on disk."""
    item = reg.create(CacheRecord(path, 0, 1.0, 1.0, RangeSet()))
    await item.open(now=1.0)
    item.write(0, data)
    if dirty:
        item.changed(now=2.0)
        await item.record_dirty()
    else:
        await item.save(durable=False)
    await item.close(now=2.0)


async def test_load_recovers_items_and_trusts_a_dirty_data_file(tmp_path: Path) -> None:
    first = registry(tmp_path)
    await put(first, "clean", b"abc", dirty=False)
    await put(first, "d/dirty", b"x", dirty=True)
    # Written after the record was saved: the data file is the truth.
    (tmp_path / "cache" / "data" / "d" / "dirty").write_bytes(b"longer")
    again = registry(tmp_path)
    await again.load()
    assert sorted(i.path for i in again) == ["clean", "d/dirty"]
    dirty = again.get("d/dirty")
    assert dirty is not None and dirty.size == 6 and dirty.record.ranges.covers(0, 6)
    assert [i.path for i in again.dirty_children("d")] == ["d/dirty"]
    assert again.dirty_children("") == []


async def test_load_drops_what_it_cannot_trust(tmp_path: Path) -> None:
    first = registry(tmp_path)
    await put(first, "damaged", b"abc", dirty=True)
    await put(first, "resized", b"abc", dirty=False)
    await put(first, "gone", b"abc", dirty=True)
    (tmp_path / "cache" / "meta" / "damaged").write_bytes(b"{not json")
    (tmp_path / "cache" / "data" / "resized").write_bytes(b"abcdef")
    (tmp_path / "cache" / "data" / "gone").unlink()
    again = registry(tmp_path)
    await again.load()
    assert len(again) == 0
    assert not (tmp_path / "cache" / "meta" / "damaged").exists()
    # The damaged item's data may be a write's only copy: kept aside, with its record.
    [kept] = (tmp_path / "cache" / "corrupt").iterdir()
    assert (kept / "damaged").read_bytes() == b"abc"
    assert (kept / "damaged.record").read_bytes() == b"{not json"


async def test_rename_moves_a_directory_of_items(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    await put(reg, "a/one", b"1", dirty=True)
    await put(reg, "a/sub/two", b"2", dirty=False)
    await put(reg, "ab", b"3", dirty=False)  # a sibling sharing the prefix stays
    moved = await reg.rename("a", "b")
    assert sorted(i.path for i in moved) == ["b/one", "b/sub/two"]
    assert sorted(i.path for i in reg) == ["ab", "b/one", "b/sub/two"]
    assert (tmp_path / "cache" / "data" / "b" / "sub" / "two").read_bytes() == b"2"
    assert await reg.rename("nothing", "else") == []


async def test_remove_forgets_the_item_and_its_data(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    await put(reg, "f", b"data", dirty=True)
    item = reg.get("f")
    assert item is not None
    await reg.remove(item)
    assert item.removed and "f" not in reg
    assert not (tmp_path / "cache" / "data" / "f").exists()
