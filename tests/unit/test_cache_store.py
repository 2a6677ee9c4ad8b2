"""The disk cache store: layout, atomic records, path safety, sparse files."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest
from loguru import logger

from adapters.cache import DiskCacheStore, cache_root
from application.vfs.cache import VfsCache
from domain.volume import CacheMode, VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


async def test_layout_records_and_rename(tmp_path: Path) -> None:
    store = DiskCacheStore(cache_root(str(tmp_path), "vol"))
    f = await store.open("a/b/file")
    f.pwrite(1 << 20, b"x")
    assert f.length() == (1 << 20) + 1
    await f.sync()
    await f.close()
    await store.save_record("a/b/file", b"{}", durable=True)
    root = tmp_path / "vfs" / "vol"
    assert (root / "data" / "a" / "b" / "file").stat().st_size == (1 << 20) + 1
    assert (root / "meta" / "a" / "b" / "file").read_bytes() == b"{}"
    assert store.present_bytes("a/b/file") < 1 << 20  # sparse
    assert store.data_length("a/b/file") == (1 << 20) + 1

    await store.rename("a", "c")  # a whole directory of items
    assert await store.load_records() == [("c/b/file", b"{}")]
    assert not (root / "data" / "a").exists()
    await store.remove("c/b/file")
    assert await store.load_records() == []
    assert not (root / "data" / "c").exists()  # empty directories pruned
    assert store.data_length("c/b/file") is None


async def test_half_written_records_are_cleared_at_load(tmp_path: Path) -> None:
    store = DiskCacheStore(str(tmp_path))
    await store.save_record("f", b"whole", durable=False)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "tmp" / "0123").write_bytes(b"half")  # a worker died mid-write
    assert await store.load_records() == [("f", b"whole")]
    assert not (tmp_path / "tmp").exists()


async def test_set_aside_keeps_data_and_record_out_of_the_cache(tmp_path: Path) -> None:
    store = DiskCacheStore(str(tmp_path))
    f = await store.open("d/f")
    f.pwrite(0, b"only copy")
    await f.close()
    await store.save_record("d/f", b"{garbage", durable=False)
    place = await store.set_aside("d/f")
    [kept] = (tmp_path / "corrupt").iterdir()
    assert place == str(kept)
    assert (kept / "d" / "f").read_bytes() == b"only copy"
    assert (kept / "d" / "f.record").read_bytes() == b"{garbage"
    assert await store.load_records() == []
    assert store.data_length("d/f") is None
    assert not (tmp_path / "data" / "d").exists()  # emptied directories pruned
    assert await store.set_aside("never/cached") is None


@pytest.mark.parametrize("path", ["../escape", "a/../../b", "/etc/passwd", "", "a//b"])
async def test_unsafe_paths_are_refused(tmp_path: Path, path: str) -> None:
    store = DiskCacheStore(str(tmp_path / "cache"))
    with pytest.raises(PermissionError) as info:
        await store.open(path)
    assert info.value.errno == errno.EACCES
    assert not (tmp_path / "escape").exists()


async def test_symlinks_in_the_cache_are_not_followed(tmp_path: Path) -> None:
    store = DiskCacheStore(str(tmp_path / "cache"))
    (tmp_path / "cache" / "data").mkdir(parents=True)
    os.symlink(tmp_path / "target", tmp_path / "cache" / "data" / "f")
    with pytest.raises(OSError) as info:
        await store.open("f")
    assert info.value.errno == errno.ELOOP
    assert not (tmp_path / "target").exists()


def test_sparse_files_are_detected_here(tmp_path: Path) -> None:
    assert DiskCacheStore(str(tmp_path)).sparse_supported()
    assert os.listdir(tmp_path) == []  # the probe is cleaned up


class DenseStore(DiskCacheStore):
    def sparse_supported(self) -> bool:
        return False  # as on FAT/exFAT


async def test_a_cache_without_sparse_files_is_logged_as_an_error(
    tmp_path: Path, logs: list[str]
) -> None:
    options = VfsOptions(cache_mode=CacheMode.FULL, cache_poll_interval=0)
    cache = VfsCache(DenseStore(str(tmp_path)), MemoryStorage(), options)
    await cache.start()
    await cache.stop()
    assert any(
        line.startswith("ERROR") and "does not support sparse files" in line for line in logs
    )


async def test_a_record_saved_while_a_neighbour_is_removed_lands(tmp_path: Path) -> None:
    """Removing a file's record prunes the directories it leaves empty, in a thread;
    a record being saved into the same directory meanwhile still lands."""
    store = DiskCacheStore(cache_root(str(tmp_path), "vol"))
    for _ in range(300):
        await store.save_record("d/neighbour", b"{}", durable=False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.remove, "d/neighbour")
            tg.start_soon(partial(store.save_record, "d/saved", b"{}", durable=True))
        assert [path for path, _ in await store.load_records()] == ["d/saved"]
        await store.remove("d/saved")
