"""File contents in rclone's crypt format: a 32-byte header ("RCLONE\\0\\0" and a
random 24-byte nonce), then the data in 64 KiB chunks, each sealed with NaCl
secretbox (a 16-byte tag ahead of its ciphertext) under the header's nonce plus
the chunk's index (a 192-bit little-endian counter)."""

from __future__ import annotations

import errno
import os

from nacl._sodium import ffi, lib
from nacl.bindings import crypto_secretbox_easy

from adapters.storage.crypt.cipher import (
    CHUNK_SIZE,
    HEADER_MAGIC,
    HEADER_SIZE,
    NONCE_SIZE,
    SEALED_CHUNK,
)
from application.ports import RemoteReader, RemoteWriter

_NONCE_MODULUS = 1 << (8 * NONCE_SIZE)


def _chunk_nonce(base: int, index: int) -> bytes:
    return ((base + index) % _NONCE_MODULUS).to_bytes(NONCE_SIZE, "little")


class ChunkBox:
    """NaCl secretbox under the file data key, as rclone seals each chunk: the
    16-byte tag, then the ciphertext (libsodium's "easy" layout).

    A read opens its chunks straight into the buffer it returns, through the
    libsodium call that PyNaCl wraps: PyNaCl's own binding pads and copies each
    64 KiB chunk three times (opening a 1 MiB read this way takes 17% less time).
    `nacl._sodium` is PyNaCl's cffi module; the function is libsodium's public API."""

    TAG_SIZE = 16

    def __init__(self, key: bytes) -> None:
        self._key = key

    def seal(self, chunk: bytes, nonce: bytes) -> bytes:
        return crypto_secretbox_easy(chunk, nonce, self._key)

    def open_into(
        self, out: bytearray, out_at: int, sealed: bytes, at: int, length: int, nonce: bytes
    ) -> bool:
        """Open the `length` sealed bytes at `sealed[at:]` into `out[out_at:]`;
        False when they fail authentication (a wrong key, or damage)."""
        if length < self.TAG_SIZE or out_at + length - self.TAG_SIZE > len(out):
            return False
        if at + length > len(sealed):
            return False
        status = lib.crypto_secretbox_open_easy(
            ffi.from_buffer(out) + out_at, ffi.from_buffer(sealed) + at, length, nonce, self._key
        )
        return bool(status == 0)


class CryptReader:
    """Plain bytes at any offset of an encrypted file: only the chunks covering
    the range are read and opened; the last one opened is kept for the next read,
    which usually continues it."""

    def __init__(self, inner: RemoteReader, box: ChunkBox, plain_size: int, label: str) -> None:
        self._inner = inner
        self._box = box
        self._size = plain_size
        self._label = label
        self._nonce = 0
        self._kept: tuple[int, bytes] = (-1, b"")

    async def start(self) -> None:
        header = await self._inner.read(0, HEADER_SIZE)
        if len(header) != HEADER_SIZE or not header.startswith(HEADER_MAGIC):
            raise OSError(errno.EIO, f"{self._label}: not an rclone crypt file (bad header)")
        self._nonce = int.from_bytes(header[len(HEADER_MAGIC) :], "little")

    async def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self._size)
        if offset >= end:
            return b""
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        plain = bytearray((last - first + 1) * CHUNK_SIZE)
        filled, index = 0, first
        if self._kept[0] == first:
            kept = self._kept[1]
            plain[: len(kept)] = kept
            filled, index = len(kept), index + 1
        if index <= last:
            start = HEADER_SIZE + index * SEALED_CHUNK
            sealed = await self._inner.read(start, (last - index + 1) * SEALED_CHUNK)
            # Opened on the event loop: a thread for a streaming read's pieces (up
            # to 4 MiB) measured slower (bench/RESULTS.md, issue 13).
            filled, index = self._open_all(plain, filled, sealed, index)
        if index > first:
            last_start = (index - 1 - first) * CHUNK_SIZE
            self._kept = (index - 1, bytes(memoryview(plain)[last_start:filled]))
        skip = offset - first * CHUNK_SIZE
        return bytes(memoryview(plain)[skip : min(skip + end - offset, filled)])

    def _open_all(
        self, plain: bytearray, filled: int, sealed: bytes, index: int
    ) -> tuple[int, int]:
        """Open the sealed chunks, the first being chunk `index`, into `plain`
        from `filled`; the new fill and the next chunk's index."""
        for at in range(0, len(sealed), SEALED_CHUNK):
            length = min(SEALED_CHUNK, len(sealed) - at)
            nonce = _chunk_nonce(self._nonce, index)
            if not self._box.open_into(plain, filled, sealed, at, length, nonce):
                raise OSError(
                    errno.EIO, f"{self._label}: chunk {index} fails authentication (wrong key?)"
                )
            filled += length - ChunkBox.TAG_SIZE
            index += 1
        return filled, index

    async def close(self) -> None:
        await self._inner.close()


class CryptWriter:
    """Encrypts as it goes: whole chunks are sealed and passed on, the rest waits
    for more data or for commit."""

    def __init__(self, inner: RemoteWriter, box: ChunkBox) -> None:
        self._inner = inner
        self._box = box
        nonce = os.urandom(NONCE_SIZE)
        self._nonce = int.from_bytes(nonce, "little")
        self._pending = bytearray(HEADER_MAGIC + nonce)  # sealed bytes not yet passed on
        self._plain = bytearray()
        self._index = 0

    def _seal(self, chunk: bytes) -> None:
        self._pending += self._box.seal(chunk, _chunk_nonce(self._nonce, self._index))
        self._index += 1

    async def write(self, data: bytes) -> None:
        self._plain += data
        if len(self._plain) < CHUNK_SIZE:
            return
        whole = len(self._plain) - len(self._plain) % CHUNK_SIZE
        view = memoryview(self._plain)
        for pos in range(0, whole, CHUNK_SIZE):
            self._seal(bytes(view[pos : pos + CHUNK_SIZE]))
        view.release()
        del self._plain[:whole]
        await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            pending, self._pending = bytes(self._pending), bytearray()
            await self._inner.write(pending)

    async def commit(self) -> None:
        if self._plain:
            self._seal(bytes(self._plain))
            self._plain.clear()
        await self._flush()
        await self._inner.commit()

    async def abort(self) -> None:
        await self._inner.abort()
