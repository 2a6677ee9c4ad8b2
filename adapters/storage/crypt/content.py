"""File contents in rclone's crypt format: a 32-byte header ("RCLONE\\0\\0" and a
random 24-byte nonce), then the data in 64 KiB chunks, each sealed with NaCl
secretbox (a 16-byte tag ahead of its ciphertext) under the header's nonce plus
the chunk's index (a 192-bit little-endian counter)."""

from __future__ import annotations

import errno
import os

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

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


class CryptReader:
    """Plain bytes at any offset of an encrypted file: only the chunks covering
    the range are read and opened; the last one opened is kept for the next read,
    which usually continues it."""

    def __init__(self, inner: RemoteReader, box: SecretBox, plain_size: int, label: str) -> None:
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
        chunks: list[bytes] = []
        index = first
        if self._kept[0] == first:
            chunks.append(self._kept[1])
            index += 1
        if index <= last:
            start = HEADER_SIZE + index * SEALED_CHUNK
            sealed = await self._inner.read(start, (last - index + 1) * SEALED_CHUNK)
            for pos in range(0, len(sealed), SEALED_CHUNK):
                chunks.append(self._open(index, sealed[pos : pos + SEALED_CHUNK]))
                index += 1
        if chunks:
            self._kept = (index - 1, chunks[-1])
        data = b"".join(chunks)
        skip = offset - first * CHUNK_SIZE
        return data[skip : skip + end - offset]

    def _open(self, index: int, sealed: bytes) -> bytes:
        try:
            return self._box.decrypt(sealed, _chunk_nonce(self._nonce, index))
        except CryptoError:
            raise OSError(
                errno.EIO, f"{self._label}: chunk {index} fails authentication (wrong key?)"
            ) from None

    async def close(self) -> None:
        await self._inner.close()


class CryptWriter:
    """Encrypts as it goes: whole chunks are sealed and passed on, the rest waits
    for more data or for commit."""

    def __init__(self, inner: RemoteWriter, box: SecretBox) -> None:
        self._inner = inner
        self._box = box
        nonce = os.urandom(NONCE_SIZE)
        self._nonce = int.from_bytes(nonce, "little")
        self._pending = bytearray(HEADER_MAGIC + nonce)  # sealed bytes not yet passed on
        self._plain = bytearray()
        self._index = 0

    def _seal(self, chunk: bytes) -> None:
        sealed = self._box.encrypt(chunk, _chunk_nonce(self._nonce, self._index)).ciphertext
        self._pending += sealed
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
