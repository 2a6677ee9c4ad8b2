"""crypt's file contents on their own: any range of a sealed file reads back as
written, including the short last chunk and reads that continue the last one, and a
damaged chunk fails with EIO while the others still read (rclone interoperability
is checked against rclone in tests/integration/test_storage_crypt.py)."""

from __future__ import annotations

import errno
import os

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.storage.crypt.cipher import CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK
from adapters.storage.crypt.content import ChunkBox, CryptReader, CryptWriter
from tests.fakes.storage import MemoryStorage

BOX = ChunkBox(os.urandom(32))
DATA = os.urandom(3 * CHUNK_SIZE + 12_345)  # three whole chunks and a short one


async def _stored(data: bytes) -> MemoryStorage:
    storage = MemoryStorage()
    writer = CryptWriter(await storage.open_writer("f"), BOX)
    for at in range(0, len(data), 50_000):  # writes that do not line up with chunks
        await writer.write(data[at : at + 50_000])
    await writer.commit()
    return storage


async def _reader(storage: MemoryStorage) -> CryptReader:
    reader = CryptReader(await storage.open_reader("f"), BOX, len(DATA), "crypt f")
    await reader.start()
    return reader


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(DATA) + 10), st.integers(0, 200_000)), max_size=8))
def test_any_ranges_read_back_as_written(ranges: list[tuple[int, int]]) -> None:
    async def check() -> None:
        reader = await _reader(await _stored(DATA))
        for offset, size in ranges:
            assert await reader.read(offset, size) == DATA[offset : offset + size]
        position = 0  # then sequentially, as a streaming read does, continuing chunks
        while position < len(DATA):
            assert await reader.read(position, 40_000) == DATA[position : position + 40_000]
            position += 40_000

    anyio.run(check)


def test_a_damaged_chunk_fails_with_eio_and_the_others_still_read() -> None:
    async def check() -> None:
        storage = await _stored(DATA)
        sealed = bytearray(storage.tree.get("f"))
        sealed[HEADER_SIZE + SEALED_CHUNK + 100] ^= 1  # inside chunk 1
        storage.tree.put("f", bytes(sealed))
        reader = await _reader(storage)
        assert await reader.read(0, 1000) == DATA[:1000]
        with pytest.raises(OSError) as info:
            await reader.read(CHUNK_SIZE - 10, 20)
        assert info.value.errno == errno.EIO
        assert "chunk 1" in str(info.value)
        assert await reader.read(2 * CHUNK_SIZE, 10) == DATA[2 * CHUNK_SIZE : 2 * CHUNK_SIZE + 10]

    anyio.run(check)
