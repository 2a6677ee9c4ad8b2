"""Reading and writing files of an fsspec filesystem (see fsspec_storage.py):
ranged reads that cope with a server ignoring ranges, and uploads spooled to a
local temp file until commit."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any

import anyio.to_thread

_WHOLE_FILE_LIMIT = 256 * 1024 * 1024  # a range-ignoring reader keeps files up to this

ReadRange = Callable[[int, int], Awaitable[bytes]]  # bytes [start, end) of the file
Upload = Callable[[IO[bytes]], Awaitable[None]]  # send the spool's content to the file


async def in_thread(func: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(func)


def temp_file() -> IO[bytes]:
    # Unnamed: it vanishes with the process, whatever happens to the upload.
    return tempfile.TemporaryFile(prefix="cloudvol-upload-")


class FsspecReader:
    """Reads ranges of one file; `size` is the size known at open (-1: unknown)."""

    def __init__(self, read_range: ReadRange, size: int) -> None:
        self._read_range, self._size = read_range, size
        self._whole: bytes | None = None
        self._closed = False

    async def read(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise ValueError("read on a closed file")
        if size <= 0 or offset < 0:
            return b""
        if self._whole is not None:
            return self._whole[offset : offset + size]
        end = offset + size
        if self._size >= 0:
            if offset >= self._size:
                return b""
            end = min(end, self._size)
        data = await self._read_range(offset, end)
        wanted = end - offset
        if len(data) > wanted:
            # The range was ignored: this is the whole file.
            if self._size < 0 or len(data) == self._size:
                if len(data) <= _WHOLE_FILE_LIMIT:
                    self._whole = data
                return data[offset:end]
            return data[:wanted]
        return data

    async def close(self) -> None:
        self._closed = True
        self._whole = None


class FsspecWriter:
    """Spools the file locally; commit uploads it, abort forgets it."""

    def __init__(self, upload: Upload, spool: IO[bytes]) -> None:
        self._upload = upload
        self._spool: IO[bytes] | None = spool

    async def write(self, data: bytes) -> None:
        spool = self._spool
        if spool is None:
            raise ValueError("write on a finished upload")
        await in_thread(lambda: spool.write(data))

    async def commit(self) -> None:
        spool = self._spool
        if spool is None:
            raise ValueError("commit on a finished upload")
        self._spool = None
        try:
            await self._upload(spool)
        finally:
            await in_thread(spool.close)

    async def abort(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            await in_thread(spool.close)
