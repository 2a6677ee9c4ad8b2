"""The behaviour every `RemoteStorage` shares, checked once for all of them.

A test module defines a `backend` fixture yielding a `Backend` (the storage, after
check(), and a `RawView` of the same data seen from outside the storage), and
subclasses `StorageContract`:

    class TestMemoryStorage(StorageContract):
        pass

Used by tests/integration/test_storage_sftp.py (local and sftp),
tests/unit/test_fsspec_storage.py (fsspec memory), tests/integration/test_storage_s3.py
and tests/unit/test_memory_storage_contract.py (the fake the unit tests use).
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import pytest

from application.ports import RemoteStorage, SupportsHardLinks, SupportsMetadata
from domain.metadata import FileMetadata

MiB = 1024 * 1024


class RawView(Protocol):
    """The storage's data as another client sees it (paths relative to the root)."""

    def read(self, path: str) -> bytes: ...

    def names(self, directory: str = "") -> list[str]:
        """The entries directly in `directory`, sorted."""
        ...

    def exists(self, path: str) -> bool: ...

    def mtime(self, path: str) -> float:
        """The modification time the remote keeps for the file `path`."""
        ...


@dataclass
class PathView:
    """A RawView of a local directory (the local backend, or an sftp server's files)."""

    root: Path

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def names(self, directory: str = "") -> list[str]:
        return sorted(p.name for p in (self.root / directory).iterdir())

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def mtime(self, path: str) -> float:
        return (self.root / path).stat().st_mtime


@dataclass
class Backend:
    storage: RemoteStorage
    raw: RawView


async def put(storage: RemoteStorage, path: str, data: bytes) -> None:
    writer = await storage.open_writer(path)
    await writer.write(data)
    await writer.commit()


async def get(storage: RemoteStorage, path: str, offset: int = 0, size: int = 1 << 40) -> bytes:
    reader = await storage.open_reader(path)
    try:
        return await reader.read(offset, size)
    finally:
        await reader.close()


@pytest.mark.anyio
class StorageContract:
    """Subclass in a module that provides the `backend` fixture."""

    async def test_large_write_then_ranged_reads(self, backend: Backend) -> None:
        s = backend.storage
        data = os.urandom(5 * MiB)
        writer = await s.open_writer("big.bin")
        # Uneven pieces: offsets must come out right whatever the chunking.
        for start in range(0, len(data), 700_001):
            await writer.write(data[start : start + 700_001])
        await writer.commit()

        assert backend.raw.read("big.bin") == data
        assert (await s.stat("big.bin")).size == len(data)

        reader = await s.open_reader("big.bin")
        try:
            for offset, size in [
                (0, 10),
                (123_457, 1_000_000),
                (4 * MiB + 3, 2 * MiB),
                (0, 5 * MiB),
            ]:
                assert await reader.read(offset, size) == data[offset : offset + size]
            assert await reader.read(len(data) - 10, 100) == data[-10:]
            assert await reader.read(len(data), 10) == b""
            assert await reader.read(len(data) + 12345, 10) == b""
        finally:
            await reader.close()

    async def test_upload_is_atomic_and_abort_keeps_old_content(self, backend: Backend) -> None:
        s = backend.storage
        await put(s, "f.txt", b"old content")

        writer = await s.open_writer("f.txt")
        await writer.write(b"new")
        assert await get(s, "f.txt") == b"old content"  # not replaced before commit
        await writer.abort()
        assert await get(s, "f.txt") == b"old content"
        assert backend.raw.names() == ["f.txt"]

        writer = await s.open_writer("f.txt")
        await writer.write(b"new ")
        await writer.write(b"content")
        await writer.commit()
        assert await get(s, "f.txt") == b"new content"
        assert backend.raw.names() == ["f.txt"]

    async def test_empty_file(self, backend: Backend) -> None:
        s = backend.storage
        writer = await s.open_writer("empty")
        await writer.commit()
        entry = await s.stat("empty")
        assert (entry.is_dir, entry.size) == (False, 0)
        assert await get(s, "empty") == b""

    async def test_list_dir_and_stat(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("d")
        await put(s, "a.txt", b"abc")
        await put(s, "d/b.txt", b"12345")

        listing = {e.name: e for e in await s.list_dir("")}
        assert sorted(listing) == ["a.txt", "d"]
        assert (listing["a.txt"].is_dir, listing["a.txt"].size) == (False, 3)
        assert listing["d"].is_dir
        assert [(e.name, e.size) for e in await s.list_dir("d")] == [("b.txt", 5)]

        root = await s.stat("")
        assert root.is_dir
        entry = await s.stat("d/b.txt")
        assert (entry.name, entry.is_dir, entry.size) == ("b.txt", False, 5)
        assert abs(entry.mtime - time.time()) < 60
        assert (await s.stat("d")).is_dir

        await s.set_mtime("d/b.txt", 1_000_000_000.0)
        assert (await s.stat("d/b.txt")).mtime == pytest.approx(1_000_000_000.0, abs=1)
        assert backend.raw.mtime("d/b.txt") == pytest.approx(1e9, abs=1)
        assert await get(s, "d/b.txt") == b"12345"  # setting the time keeps the data

    async def test_empty_directory_is_listed(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("empty")
        await s.mkdir("empty/inner")
        assert [(e.name, e.is_dir) for e in await s.list_dir("")] == [("empty", True)]
        assert [(e.name, e.is_dir) for e in await s.list_dir("empty")] == [("inner", True)]
        assert await s.list_dir("empty/inner") == []
        assert (await s.stat("empty/inner")).is_dir
        assert backend.raw.exists("empty/inner")

    async def test_directory_stays_when_its_last_file_goes(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("d")
        await put(s, "d/f", b"x")
        await s.remove("d/f")
        assert (await s.stat("d")).is_dir
        assert await s.list_dir("d") == []
        await put(s, "d/g", b"y")
        await s.rename("d/g", "moved")
        assert await s.list_dir("d") == []
        assert backend.raw.exists("d")

    async def test_mkdir_and_rmdir(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("d")
        with pytest.raises(FileExistsError):
            await s.mkdir("d")
        with pytest.raises(FileNotFoundError):
            await s.mkdir("nope/sub")
        await put(s, "d/f", b"x")
        with pytest.raises(FileExistsError):
            await s.mkdir("d/f")
        with pytest.raises(OSError) as excinfo:
            await s.rmdir("d")
        assert excinfo.value.errno == errno.ENOTEMPTY
        with pytest.raises(NotADirectoryError):
            await s.rmdir("d/f")
        with pytest.raises(FileNotFoundError):
            await s.rmdir("missing")
        await s.remove("d/f")
        await s.rmdir("d")
        assert not backend.raw.exists("d")
        with pytest.raises(FileNotFoundError):
            await s.stat("d")
        assert await s.list_dir("") == []

    async def test_remove(self, backend: Backend) -> None:
        s = backend.storage
        await put(s, "f", b"x")
        await s.mkdir("d")
        await s.remove("f")
        assert not backend.raw.exists("f")
        with pytest.raises(FileNotFoundError):
            await s.remove("f")
        with pytest.raises(IsADirectoryError):
            await s.remove("d")

    async def test_rename(self, backend: Backend) -> None:
        s = backend.storage
        await put(s, "a", b"from a")
        await put(s, "b", b"from b")
        await s.rename("a", "b")  # replaces the existing file
        assert await get(s, "b") == b"from a"
        with pytest.raises(FileNotFoundError):
            await s.stat("a")
        with pytest.raises(FileNotFoundError):
            await s.rename("a", "c")

        await s.mkdir("d")
        await put(s, "d/inner", b"i")
        await s.mkdir("d/sub")
        await s.rename("d", "e")
        assert await get(s, "e/inner") == b"i"
        assert (await s.stat("e/sub")).is_dir
        assert not backend.raw.exists("d")
        with pytest.raises(FileNotFoundError):
            await s.stat("d")

        await s.mkdir("full")
        await put(s, "full/x", b"x")
        await s.mkdir("src")
        with pytest.raises(OSError) as excinfo:
            await s.rename("src", "full")
        assert excinfo.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
        with pytest.raises(IsADirectoryError):
            await s.rename("b", "full")
        with pytest.raises(FileNotFoundError):
            await s.rename("b", "nowhere/b")

    async def test_missing_and_wrong_kinds(self, backend: Backend) -> None:
        s = backend.storage
        await put(s, "f", b"x")
        await s.mkdir("d")
        with pytest.raises(FileNotFoundError):
            await s.stat("nothing")
        with pytest.raises(FileNotFoundError):
            await s.list_dir("nothing")
        with pytest.raises(FileNotFoundError):
            await s.open_reader("nothing")
        with pytest.raises(FileNotFoundError):
            await s.open_writer("nothing/f")
        with pytest.raises(FileNotFoundError):
            await s.set_mtime("nothing", 1_000_000_000.0)
        assert not backend.raw.exists("nothing")  # no empty file made to carry the time
        with pytest.raises(NotADirectoryError):
            await s.list_dir("f")
        with pytest.raises(IsADirectoryError):
            await s.open_reader("d")
        with pytest.raises(IsADirectoryError):
            await s.open_writer("d")

    async def test_refuses_paths_leaving_the_root(self, backend: Backend) -> None:
        for bad in ("../etc/passwd", "d/../../x", "/etc/passwd"):
            with pytest.raises(PermissionError):
                await backend.storage.stat(bad)

    async def test_concurrent_readers_and_writers(self, backend: Backend) -> None:
        s = backend.storage
        blobs = {f"f{i}": os.urandom(300_000 + i) for i in range(8)}
        async with anyio.create_task_group() as tg:
            for name, data in blobs.items():
                tg.start_soon(put, s, name, data)
        results: dict[str, bytes] = {}

        async def fetch(name: str) -> None:
            results[name] = await get(s, name)

        async with anyio.create_task_group() as tg:
            for name in blobs:
                tg.start_soon(fetch, name)
        assert results == blobs
        assert backend.raw.names() == sorted(blobs)


@pytest.mark.anyio
class MetadataContract:
    """For storages that are `SupportsMetadata` (memory, local, sftp): the mode,
    owner and times set are those stat and list_dir then report."""

    async def test_set_metadata_then_stat_and_list(self, backend: Backend) -> None:
        s = backend.storage
        assert isinstance(s, SupportsMetadata)
        await put(s, "f", b"x")
        await s.set_metadata("f", FileMetadata(mode=0o751, atime=1_000_000_000.0, mtime=2e9))
        for entry in (await s.stat("f"), (await s.list_dir(""))[0]):
            assert entry.metadata is not None
            assert entry.metadata.mode == 0o751
            assert entry.metadata.atime == 1_000_000_000.0
            assert entry.mtime == 2e9
        # Owner changes as root (the tests' user): to a uid and gid not ours.
        await s.set_metadata("f", FileMetadata(uid=4321, gid=4322))
        meta = (await s.stat("f")).metadata
        assert meta is not None and (meta.uid, meta.gid, meta.mode) == (4321, 4322, 0o751)

    async def test_set_metadata_of_a_directory_and_a_missing_file(self, backend: Backend) -> None:
        s = backend.storage
        assert isinstance(s, SupportsMetadata)
        await s.mkdir("d")
        await s.set_metadata("d", FileMetadata(mode=0o700))
        meta = (await s.stat("d")).metadata
        assert meta is not None and meta.mode == 0o700
        with pytest.raises(FileNotFoundError):
            await s.set_metadata("missing", FileMetadata(mode=0o700))


@pytest.mark.anyio
class HardLinkContract:
    """For storages that are `SupportsHardLinks` and say they can make them."""

    async def test_hard_link_shares_the_file_and_counts_links(self, backend: Backend) -> None:
        s = backend.storage
        assert isinstance(s, SupportsHardLinks)
        assert await s.hard_links_supported()
        await put(s, "f", b"shared")
        await s.hard_link("f", "g")
        assert backend.raw.read("g") == b"shared"
        # Listings carry the count (SFTP: in the long name); SFTP v3's stat has
        # no field for it, so stat may say 1.
        assert {e.name: e.nlink for e in await s.list_dir("")} == {"f": 2, "g": 2}
        assert (await s.stat("g")).nlink in (1, 2)
        with pytest.raises(FileExistsError):
            await s.hard_link("f", "g")
        await s.remove("f")
        assert backend.raw.read("g") == b"shared"
