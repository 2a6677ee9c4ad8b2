"""The in-memory fake (tests/fakes/storage.py) against the contract every real
adapter passes (tests/storage_contract.py), and what only the fake has: a switch
that makes the remote unreachable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from application.ports import RemoteStorage
from domain.errors import RemoteUnavailable
from domain.paths import basename
from tests.fakes.storage import MemoryStorage, MemoryTree
from tests.storage_contract import (
    Backend,
    HardLinkContract,
    MetadataContract,
    StorageContract,
    put,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class TreeView:
    tree: MemoryTree

    def read(self, path: str) -> bytes:
        return self.tree.get(path)

    def names(self, directory: str = "") -> list[str]:
        return sorted(basename(p) for p in self.tree.children(directory))

    def exists(self, path: str) -> bool:
        return path in self.tree.files or path in self.tree.dirs

    def mtime(self, path: str) -> float:
        return self.tree.files[path].mtime


@pytest.fixture
async def backend() -> Backend:
    storage = MemoryStorage()
    await storage.check()
    return Backend(storage, TreeView(storage.tree))


class TestMemoryStorage(StorageContract, MetadataContract, HardLinkContract):
    """The shared behaviour (tests/storage_contract.py) on the fake."""


async def test_rename_of_a_directory_into_itself_fails() -> None:
    storage = MemoryStorage()
    await storage.mkdir("d")
    with pytest.raises(OSError, match="into itself"):
        await storage.rename("d", "d/sub")
    assert storage.tree.dirs == {"", "d"}


async def test_commit_fails_when_the_directory_went_meanwhile() -> None:
    storage = MemoryStorage()
    await storage.mkdir("d")
    writer = await storage.open_writer("d/f")
    await writer.write(b"x")
    await storage.rmdir("d")
    with pytest.raises(FileNotFoundError):
        await writer.commit()
    assert not storage.tree.files


async def _fresh_tree_with_a_file_and_a_dir() -> MemoryStorage:
    storage = MemoryStorage()
    await put(storage, "f", b"x")
    await storage.mkdir("d")
    return storage


CALLS: dict[str, Callable[[RemoteStorage], Awaitable[object]]] = {
    "check": lambda s: s.check(),
    "stat": lambda s: s.stat("f"),
    "list_dir": lambda s: s.list_dir(""),
    "open_reader": lambda s: s.open_reader("f"),
    "open_writer": lambda s: s.open_writer("g"),
    "mkdir": lambda s: s.mkdir("e"),
    "rmdir": lambda s: s.rmdir("d"),
    "remove": lambda s: s.remove("f"),
    "rename": lambda s: s.rename("f", "g"),
    "set_mtime": lambda s: s.set_mtime("f", 1e9),
}


@pytest.mark.parametrize("call", CALLS)
async def test_every_call_fails_while_unreachable(call: str) -> None:
    storage = await _fresh_tree_with_a_file_and_a_dir()
    before = (dict(storage.tree.files), set(storage.tree.dirs))
    storage.tree.reachable = False
    with pytest.raises(RemoteUnavailable):
        await CALLS[call](storage)
    assert (dict(storage.tree.files), set(storage.tree.dirs)) == before
    storage.tree.reachable = True
    await CALLS[call](storage)  # the same call works once the remote is back


async def test_open_reader_and_writer_fail_once_unreachable() -> None:
    storage = await _fresh_tree_with_a_file_and_a_dir()
    reader = await storage.open_reader("f")
    writer = await storage.open_writer("g")
    await writer.write(b"y")
    storage.tree.reachable = False
    with pytest.raises(RemoteUnavailable):
        await reader.read(0, 1)
    with pytest.raises(RemoteUnavailable):
        await writer.commit()
    assert "g" not in storage.tree.files
    storage.tree.reachable = True
    assert await reader.read(0, 1) == b"x"
    await writer.commit()
    assert storage.tree.get("g") == b"y"
