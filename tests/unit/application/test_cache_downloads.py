"""Downloads alone, behind their small target interface: what is fetched, in
what pieces, how far ahead, and what happens to a short remote file."""

from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import replace

import pytest

from application.vfs.cache.downloads import MAX_FETCH, Downloads
from domain.ranges import RangeSet
from domain.volume import VfsOptions

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Target:
    """A file of `size` bytes filled by the downloads, with a record of what is
    present: the `DownloadTarget` interface on plain memory."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.present = RangeSet()

    @property
    def size(self) -> int:
        return len(self.data)

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.present.missing(start, end)

    def accept_download(self, start: int, end: int, data: bytes) -> None:
        if start + len(data) < min(end, self.size):
            raise OSError(errno.EIO, "short")
        for gap_start, gap_end in self.present.missing(start, start + len(data)):
            self.data[gap_start:gap_end] = data[gap_start - start : gap_end - start]
            self.present.add(gap_start, gap_end)


class Remote:
    """A remote file; counts the reads and the readers opened."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.reads: list[tuple[int, int]] = []
        self.opened = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def open_reader(self) -> Remote:
        self.opened += 1
        return self

    async def read(self, offset: int, size: int) -> bytes:
        self.reads.append((offset, size))
        await self.gate.wait()
        return self.content[offset : offset + size]

    async def close(self) -> None:
        pass


def downloads(target: Target, remote: Remote, **kw: object) -> Downloads:
    options = replace(VfsOptions(), **kw)  # type: ignore[arg-type]
    return Downloads(target, remote.open_reader, options)


async def test_fill_fetches_only_what_is_missing_in_pieces() -> None:
    content = os.urandom(10 * MiB)
    target, remote = Target(len(content)), Remote(content)
    d = downloads(target, remote)
    await d.fill(MiB, 2 * MiB)
    assert remote.reads == [(MiB, MiB)]
    remote.reads.clear()
    await d.fill(0, 10 * MiB)
    assert all(size <= MAX_FETCH for _, size in remote.reads)
    assert sorted(remote.reads)[0] == (0, MiB)  # the part present is not fetched again
    assert bytes(target.data) == content
    assert remote.opened == 1  # one reader shared by every fetch
    await d.close_reader()


async def test_a_small_read_still_fetches_the_minimum() -> None:
    target, remote = Target(MiB), Remote(os.urandom(MiB))
    d = downloads(target, remote)
    await d.fill(0, 10, minimum=256 * 1024)
    assert remote.reads == [(0, 256 * 1024)]


async def test_read_chunk_size_cuts_the_pieces() -> None:
    target, remote = Target(2 * MiB), Remote(os.urandom(2 * MiB))
    d = downloads(target, remote, read_chunk_size=512 * 1024)
    await d.fill(0, 2 * MiB)
    assert sorted(remote.reads) == [(i * 512 * 1024, 512 * 1024) for i in range(4)]


async def test_read_ahead_keeps_the_window_filled_within_the_buffer() -> None:
    content = os.urandom(64 * MiB)
    target, remote = Target(len(content)), Remote(content)
    d = downloads(target, remote, buffer_size=8 * MiB)
    remote.gate.clear()
    d.read_ahead(0, 32 * MiB)
    assert d.inflight_bytes() == 8 * MiB  # the buffer bounds what is in memory
    remote.gate.set()
    deadline = asyncio.get_running_loop().time() + 5.0
    while d.inflight_bytes():
        assert asyncio.get_running_loop().time() < deadline, "read-ahead not done in time"
        await asyncio.sleep(0.01)
    assert not target.missing(0, 32 * MiB)  # kept going as pieces landed
    assert target.missing(32 * MiB, 64 * MiB) == [(32 * MiB, 64 * MiB)]


async def test_a_remote_shorter_than_expected_fails_the_fill() -> None:
    target, remote = Target(2 * MiB), Remote(os.urandom(MiB))
    d = downloads(target, remote)
    with pytest.raises(OSError) as caught:
        await d.fill(0, 2 * MiB)
    assert caught.value.errno == errno.EIO


async def test_stop_cancels_what_is_in_flight() -> None:
    target, remote = Target(8 * MiB), Remote(os.urandom(8 * MiB))
    d = downloads(target, remote)
    remote.gate.clear()
    d.read_ahead(0, 8 * MiB)
    tasks = d.tasks()
    assert tasks
    await d.stop()
    assert all(t.cancelled() for t in tasks) and d.inflight_bytes() == 0
    remote.gate.set()
    await d.fill(0, MiB)  # allowed again: it does download
    assert not target.missing(0, MiB)
