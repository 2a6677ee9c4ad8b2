"""Streamed uploads alone: which writes start, feed or abort a stream, and when
a claimed stream may be committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.cache import DiskCacheStore
from application.vfs.cache.item import CacheItem
from application.vfs.cache.streams import STREAM_AFTER, Streams
from domain.cache_record import CacheRecord
from domain.ranges import RangeSet
from domain.volume import VfsOptions
from tests.fakes.storage import MemoryStorage

pytestmark = pytest.mark.anyio

PIECE = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Env:
    def __init__(self, tmp: Path, transfers: int = 4) -> None:
        self.storage = MemoryStorage()
        self.store = DiskCacheStore(str(tmp / "cache"))
        self.streams = Streams(self.storage, transfers)

    async def item(self, path: str = "f") -> CacheItem:
        record = CacheRecord(path, 0, 1.0, 1.0, RangeSet())
        item = CacheItem(record, self.store, self.storage, VfsOptions())
        await item.open(now=1.0)
        return item

    def write(self, item: CacheItem, offset: int, data: bytes) -> bool:
        """A write as the cache makes it: data, sequence, generation."""
        size_before, generation = item.size, item.generation
        item.write(offset, data)
        sequential = self.streams.follow_write(item, offset, len(data), size_before)
        item.changed(now=2.0)
        self.streams.changed(item, generation, sequential=sequential)
        return sequential


async def write_sequentially(env: Env, item: CacheItem, total: int) -> bytes:
    content = bytes(range(256)) * (total // 256)
    for offset in range(0, total, PIECE):
        assert env.write(item, offset, content[offset : offset + PIECE])
    return content


async def test_a_sequential_file_is_sent_while_written_then_committed(tmp_path: Path) -> None:
    env = Env(tmp_path)
    item = await env.item()
    content = await write_sequentially(env, item, STREAM_AFTER + 2 * PIECE)
    stream = env.streams.claim(item)
    assert stream is not None
    assert await env.streams.commit(stream, item.size)
    await env.streams.release(stream)
    assert env.storage.tree.get("f") == content


async def test_a_small_file_is_not_streamed(tmp_path: Path) -> None:
    env = Env(tmp_path)
    item = await env.item()
    await write_sequentially(env, item, STREAM_AFTER - PIECE)
    assert env.streams.is_sequential(item)
    assert env.streams.claim(item) is None


async def test_a_write_elsewhere_aborts_the_stream(tmp_path: Path) -> None:
    env = Env(tmp_path)
    item = await env.item()
    await write_sequentially(env, item, STREAM_AFTER + PIECE)
    assert not env.write(item, 0, b"rewrite")
    assert not env.streams.is_sequential(item)
    assert env.streams.claim(item) is None
    await env.streams.stop()
    assert "f" not in env.storage.tree.files


async def test_a_change_the_stream_did_not_see_makes_the_claim_fail(tmp_path: Path) -> None:
    env = Env(tmp_path)
    item = await env.item()
    await write_sequentially(env, item, STREAM_AFTER + PIECE)
    generation = item.generation
    item.changed(now=3.0)  # not reported as sequential: the stream can't know it
    env.streams.changed(item, generation, sequential=False)
    assert env.streams.claim(item) is None
    await env.streams.stop()


async def test_a_time_change_keeps_the_stream_valid(tmp_path: Path) -> None:
    env = Env(tmp_path)
    item = await env.item()
    content = await write_sequentially(env, item, STREAM_AFTER + PIECE)
    generation = item.generation
    item.set_mtime(123.0)
    env.streams.changed(item, generation, sequential=True)
    stream = env.streams.claim(item)
    assert stream is not None and await env.streams.commit(stream, item.size)
    assert env.storage.tree.get("f") == content


async def test_streams_are_limited_to_transfers(tmp_path: Path) -> None:
    env = Env(tmp_path, transfers=1)
    first, second = await env.item("a"), await env.item("b")
    await write_sequentially(env, first, STREAM_AFTER + PIECE)
    await write_sequentially(env, second, STREAM_AFTER + PIECE)
    assert env.streams.claim(second) is None  # no stream: it waits for write-back
    assert env.streams.claim(first) is not None
    await env.streams.stop()
