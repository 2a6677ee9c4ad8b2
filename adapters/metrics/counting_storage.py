"""A `RemoteStorage` that counts the bytes read from and written to the storage
it wraps: the worker's "bytes read from / written to the remote" statistics. It
changes nothing else: every call goes through as it is."""

from __future__ import annotations

from typing import Any

from application.ports import RemoteReader, RemoteStorage, RemoteWriter
from application.vfs.cache.stats import RemoteTraffic
from domain.remote_entry import RemoteEntry


class _CountingReader:
    def __init__(self, reader: RemoteReader, traffic: RemoteTraffic) -> None:
        self._reader = reader
        self._traffic = traffic

    async def read(self, offset: int, size: int) -> bytes:
        data = await self._reader.read(offset, size)
        self._traffic.bytes_read += len(data)
        return data

    async def close(self) -> None:
        await self._reader.close()


class _CountingWriter:
    def __init__(self, writer: RemoteWriter, traffic: RemoteTraffic) -> None:
        self._writer = writer
        self._traffic = traffic

    async def write(self, data: bytes) -> None:
        await self._writer.write(data)
        self._traffic.bytes_written += len(data)

    async def commit(self) -> None:
        await self._writer.commit()

    async def abort(self) -> None:
        await self._writer.abort()


class CountingStorage:
    def __init__(self, storage: RemoteStorage) -> None:
        self._storage = storage
        self.traffic = RemoteTraffic()

    def __getattr__(self, name: str) -> Any:
        # What the port does not name passes through: the optional capabilities the
        # VFS checks for (SupportsMetadata, SupportsHardLinks) stay visible, so
        # counting hides no feature of the storage it wraps.
        if name == "_storage":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._storage, name)

    async def check(self) -> None:
        await self._storage.check()

    async def stat(self, path: str) -> RemoteEntry:
        return await self._storage.stat(path)

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        return await self._storage.list_dir(path)

    async def open_reader(self, path: str) -> RemoteReader:
        return _CountingReader(await self._storage.open_reader(path), self.traffic)

    async def open_writer(self, path: str) -> RemoteWriter:
        return _CountingWriter(await self._storage.open_writer(path), self.traffic)

    async def mkdir(self, path: str) -> None:
        await self._storage.mkdir(path)

    async def rmdir(self, path: str) -> None:
        await self._storage.rmdir(path)

    async def remove(self, path: str) -> None:
        await self._storage.remove(path)

    async def rename(self, src: str, dst: str) -> None:
        await self._storage.rename(src, dst)

    async def set_mtime(self, path: str, mtime: float) -> None:
        await self._storage.set_mtime(path, mtime)

    async def aclose(self) -> None:
        await self._storage.aclose()
