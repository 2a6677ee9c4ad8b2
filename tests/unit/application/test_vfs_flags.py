"""Issue 11 §5-§6 flags in the VFS, against the in-memory storage (no FUSE):
filters, --vfs-block-norm-dupes, --vfs-refresh, --vfs-used-is-size,
--vfs-read-chunk-streams and --vfs-cache-min-free-space."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.ports import RemoteReader
from application.vfs import ROOT_INODE, Vfs
from application.vfs.cache.cleaner import Cleaner
from application.vfs.cache.item import CacheItem
from application.vfs.cache.registry import ItemRegistry
from application.vfs.reader import ReadAhead
from domain.cache_record import CacheRecord
from domain.filters import build_filter
from domain.ranges import RangeSet
from domain.remote_entry import RemoteEntry
from domain.volume import FilterOptions, VfsOptions
from tests.fakes.storage import MemoryStorage, MemoryTree
from tests.unit.application.errnos import errno_of

pytestmark = pytest.mark.anyio

OPTS = VfsOptions(dir_cache_time=60.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingStorage(MemoryStorage):
    def __init__(self, tree: MemoryTree | None = None) -> None:
        super().__init__(tree)
        self.listed: list[str] = []

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        self.listed.append(path)
        return await super().list_dir(path)


def filtered_vfs(storage: MemoryStorage, **filters: object) -> Vfs:
    opts = replace(FilterOptions(), **filters)  # type: ignore[arg-type]
    flt = build_filter(opts, lambda path: [], time.time())
    return Vfs(storage, OPTS, path_filter=flt)


async def names(vfs: Vfs, inode: int = ROOT_INODE) -> list[str]:
    fh = await vfs.opendir(inode)
    try:
        return sorted(name for name, _ in await vfs.readdir(fh, 0))
    finally:
        await vfs.releasedir(fh)


async def test_excluded_files_and_directories_are_hidden_from_listing_and_lookup() -> None:
    storage = MemoryStorage()
    for path in ("a.txt", "b.bak", "secret/x.txt", "keep/c.bak", "keep/d.txt"):
        storage.tree.put(path, b"data")
    vfs = filtered_vfs(storage, filter=("- *.bak", "- secret/"))
    assert await names(vfs) == ["a.txt", "keep"]
    assert await errno_of(vfs.lookup(ROOT_INODE, "b.bak")) == errno.ENOENT
    assert await errno_of(vfs.lookup(ROOT_INODE, "secret")) == errno.ENOENT
    keep = await vfs.lookup(ROOT_INODE, "keep")
    assert await names(vfs, keep.inode) == ["d.txt"]
    assert await errno_of(vfs.resolve("keep/c.bak")) == errno.ENOENT


async def test_include_shows_only_matches_and_the_directories_they_may_be_in() -> None:
    storage = MemoryStorage()
    for path in ("a.jpg", "a.txt", "sub/b.jpg", "sub/b.txt"):
        storage.tree.put(path, b"x")
    vfs = filtered_vfs(storage, include=("*.jpg",))
    assert await names(vfs) == ["a.jpg", "sub"]
    sub = await vfs.lookup(ROOT_INODE, "sub")
    assert await names(vfs, sub.inode) == ["b.jpg"]


async def test_size_filters_and_max_depth() -> None:
    storage = MemoryStorage()
    storage.tree.put("small", b"x")
    storage.tree.put("big", b"x" * 5000)
    storage.tree.put("d/deep", b"x" * 5000)
    vfs = filtered_vfs(storage, min_size=1024, max_depth=1)
    assert await names(vfs) == ["big", "d"]
    d = await vfs.lookup(ROOT_INODE, "d")
    assert await names(vfs, d.inode) == []


async def test_exclude_if_present_hides_marked_directories() -> None:
    storage = MemoryStorage()
    storage.tree.put("private/.nobackup", b"")
    storage.tree.put("private/data", b"x")
    storage.tree.put("public/data", b"x")
    vfs = filtered_vfs(storage, exclude_if_present=(".nobackup",))
    assert await names(vfs) == ["public"]


async def test_files_created_through_the_volume_stay_visible() -> None:
    # A filter hides what the remote has; what the user just made is there.
    storage = MemoryStorage()
    vfs = filtered_vfs(storage, exclude=("*.tmp",))
    fh, _ = await vfs.create(ROOT_INODE, "new.tmp", os.O_WRONLY | os.O_CREAT)
    assert "new.tmp" in await names(vfs)
    await vfs.release(fh)


async def test_block_norm_dupes_hides_all_but_one_normalised_name() -> None:
    storage = MemoryStorage()
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    storage.tree.put(nfd, b"decomposed")
    storage.tree.put(nfc, b"composed")
    storage.tree.put("other", b"x")
    plain = Vfs(storage, OPTS)
    assert len(await names(plain)) == 3
    vfs = Vfs(storage, replace(OPTS, block_norm_dupes=True))
    assert await names(vfs) == sorted([nfc, "other"])
    assert (await vfs.lookup(ROOT_INODE, nfc)).size == len(b"composed")
    assert await errno_of(vfs.lookup(ROOT_INODE, nfd)) == errno.ENOENT


async def test_vfs_refresh_lists_every_directory_in_the_background() -> None:
    storage = CountingStorage()
    for path in ("a/b/c/file", "a/x", "d/y", "top"):
        storage.tree.put(path, b"x")
    vfs = Vfs(storage, replace(OPTS, refresh=True))
    await vfs.start()
    await vfs.wait_background()
    assert sorted(storage.listed) == ["", "a", "a/b", "a/b/c", "d"]
    storage.listed.clear()
    await vfs.resolve("a/b/c/file")  # served from the refreshed cache
    assert storage.listed == []
    await vfs.stop()


async def test_without_vfs_refresh_nothing_is_listed_at_start() -> None:
    storage = CountingStorage()
    storage.tree.put("a/b", b"x")
    vfs = Vfs(storage, OPTS)
    await vfs.start()
    await vfs.wait_background()
    assert storage.listed == []
    await vfs.stop()


async def test_used_is_size_reports_the_sum_of_file_sizes_to_statfs() -> None:
    storage = MemoryStorage()
    storage.tree.put("a", b"x" * 10_000)
    storage.tree.put("d/e/f", b"x" * 90_000)
    plain = Vfs(storage, OPTS)
    assert plain.statfs().blocks_free == plain.statfs().blocks
    now = [1000.0]
    vfs = Vfs(storage, replace(OPTS, used_is_size=True), lambda: now[0])
    await vfs.start()
    await vfs.wait_background()
    st = vfs.statfs()
    assert (st.blocks - st.blocks_free) * st.block_size == 100_000 + 4096 - 100_000 % 4096
    storage.tree.put("g", b"x" * 400_000)
    vfs.statfs()
    await vfs.wait_background()
    st = vfs.statfs()  # still the cached total within dir-cache-time
    assert (st.blocks - st.blocks_free) * st.block_size < 200_000
    now[0] += 61
    vfs.statfs()  # stale: a new walk starts
    await vfs.wait_background()
    st = vfs.statfs()
    assert (st.blocks - st.blocks_free) * st.block_size >= 500_000
    await vfs.stop()


class TrackingReader:
    """A remote reader that records the reads in flight at once."""

    def __init__(self, data: bytes, log: dict[str, int]) -> None:
        self._data, self._log = data, log

    async def read(self, offset: int, size: int) -> bytes:
        self._log["now"] += 1
        self._log["peak"] = max(self._log["peak"], self._log["now"])
        await asyncio.sleep(0.01)
        self._log["now"] -= 1
        return self._data[offset : offset + size]

    async def close(self) -> None:
        self._log["closed"] += 1


@pytest.mark.parametrize("streams", [1, 4, 16])
async def test_chunk_streams_read_in_parallel_and_byte_identical(streams: int) -> None:
    data = os.urandom(3 * 1024 * 1024 + 12345)
    log = {"now": 0, "peak": 0, "opened": 0, "closed": 0}

    async def open_reader() -> RemoteReader:
        log["opened"] += 1
        return TrackingReader(data, log)

    stream = ReadAhead(
        open_reader, len(data), window=0, chunk_size=64 * 1024, streams=streams, name="f"
    )
    out = bytearray()
    while chunk := await stream.read(len(out), 128 * 1024):
        out += chunk
    await stream.close()
    assert bytes(out) == data
    chunks = -(-len(data) // (64 * 1024))
    # A ranged read per chunk, then closed; one stream keeps one reader.
    assert log["opened"] == log["closed"] == (chunks if streams > 1 else 1)
    assert 1 < log["peak"] <= streams if streams > 1 else log["peak"] == 1


async def test_chunk_streams_need_chunked_reading() -> None:
    opened = 0

    async def open_reader() -> RemoteReader:
        nonlocal opened
        opened += 1
        return TrackingReader(b"abc", {"now": 0, "peak": 0, "closed": 0})

    stream = ReadAhead(open_reader, 3, window=0, chunk_size=0, streams=4)
    assert await stream.read(0, 10) == b"abc"
    await stream.close()
    assert opened == 1  # chunk size 0 ("off") reads in one stream, as in rclone


class ShrinkingDiskStore(DiskCacheStore):
    def __init__(self, root: str, free: int) -> None:
        super().__init__(root)
        self.free = free

    def free_bytes(self) -> int:
        return self.free


async def test_min_free_space_evicts_least_recently_used_until_enough_is_free(
    tmp_path: Path,
) -> None:
    options = VfsOptions(cache_min_free_space=150_000, cache_max_age=1e9)
    store = ShrinkingDiskStore(str(tmp_path / "cache"), free=100_000)
    registry = ItemRegistry(store, MemoryStorage(), options)
    for i, name in enumerate(("oldest", "older", "newest")):
        item = registry.create(CacheRecord(name, 40_960, 1.0, 10.0 + i, RangeSet()))
        await item.save(durable=False)
        f = await store.open(name)
        f.pwrite(0, os.urandom(40_960))
        await f.close()
    evicted: list[str] = []

    async def evict(item: CacheItem) -> None:
        evicted.append(item.path)
        await registry.remove(item)

    cleaner = Cleaner(
        registry,
        store,
        options,
        upload_pending=lambda item: False,
        evict=evict,
        wall_clock=lambda: 100.0,
    )
    await cleaner.clean()
    assert evicted == ["oldest", "older"]  # 50 000 bytes short: two 40 KiB files
    store.free = 10**9
    await cleaner.clean()
    assert evicted == ["oldest", "older"]


async def test_disk_store_reports_free_space(tmp_path: Path) -> None:
    store = DiskCacheStore(str(tmp_path / "c"))
    st = os.statvfs(tmp_path)
    assert abs(store.free_bytes() - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
