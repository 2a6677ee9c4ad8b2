"""An in-memory RemoteStorage, faithful to the port's conventions, for unit tests."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field

from domain.errors import OptionError, RemoteUnavailable
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec


@dataclass
class _File:
    data: bytearray
    mtime: float


@dataclass
class MemoryTree:
    """The remote's content; shared by every storage made on it."""

    files: dict[str, _File] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {""})
    reachable: bool = True
    calls: list[str] = field(default_factory=list)

    def put(self, path: str, data: bytes) -> None:
        parent = parent_of(path)
        while parent not in self.dirs:
            self.dirs.add(parent)
            parent = parent_of(parent)
        self.files[path] = _File(bytearray(data), time.time())

    def get(self, path: str) -> bytes:
        return bytes(self.files[path].data)


class _Reader:
    def __init__(self, tree: MemoryTree, path: str) -> None:
        self._tree, self._path = tree, path

    async def read(self, offset: int, size: int) -> bytes:
        self._tree.calls.append(f"read {self._path} {offset} {size}")
        return bytes(self._tree.files[self._path].data[offset : offset + size])

    async def close(self) -> None:
        pass


class _Writer:
    def __init__(self, tree: MemoryTree, path: str) -> None:
        self._tree, self._path, self._buf = tree, path, bytearray()

    async def write(self, data: bytes) -> None:
        self._buf += data

    async def commit(self) -> None:
        self._tree.put(self._path, bytes(self._buf))

    async def abort(self) -> None:
        self._buf.clear()


class MemoryStorage:
    def __init__(self, tree: MemoryTree | None = None) -> None:
        self.tree = tree if tree is not None else MemoryTree()
        self.closed = False

    def _need_reachable(self) -> None:
        if not self.tree.reachable:
            raise RemoteUnavailable("connection refused (fake)")

    def _need_dir(self, path: str) -> None:
        if path in self.tree.files:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        if path not in self.tree.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)

    async def check(self) -> None:
        self._need_reachable()

    async def stat(self, path: str) -> RemoteEntry:
        self._need_reachable()
        if path in self.tree.dirs:
            return RemoteEntry(basename(path), True, 0, 0.0)
        if path in self.tree.files:
            f = self.tree.files[path]
            return RemoteEntry(basename(path), False, len(f.data), f.mtime)
        raise FileNotFoundError(errno.ENOENT, "no such file", path)

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        self._need_reachable()
        self._need_dir(path)
        entries = [await self.stat(d) for d in self.tree.dirs if d and parent_of(d) == path]
        entries += [await self.stat(f) for f in self.tree.files if parent_of(f) == path]
        return sorted(entries, key=lambda e: e.name)

    async def open_reader(self, path: str) -> _Reader:
        entry = await self.stat(path)
        if entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return _Reader(self.tree, path)

    async def open_writer(self, path: str) -> _Writer:
        self._need_reachable()
        self._need_dir(parent_of(path))
        if path in self.tree.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return _Writer(self.tree, path)

    async def mkdir(self, path: str) -> None:
        self._need_dir(parent_of(path))
        if path in self.tree.dirs or path in self.tree.files:
            raise FileExistsError(errno.EEXIST, "exists", path)
        self.tree.dirs.add(path)

    async def rmdir(self, path: str) -> None:
        self._need_dir(path)
        if await self.list_dir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        self.tree.dirs.discard(path)

    async def remove(self, path: str) -> None:
        if path not in self.tree.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        del self.tree.files[path]

    async def rename(self, src: str, dst: str) -> None:
        self._need_dir(parent_of(dst))
        if src in self.tree.files:
            self.tree.files[dst] = self.tree.files.pop(src)
        elif src in self.tree.dirs:
            moved = [d for d in self.tree.dirs if d == src or d.startswith(src + "/")]
            for d in moved:
                self.tree.dirs.discard(d)
                self.tree.dirs.add(dst + d[len(src) :])
            for f in [f for f in self.tree.files if f.startswith(src + "/")]:
                self.tree.files[dst + f[len(src) :]] = self.tree.files.pop(f)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such file", src)

    async def set_mtime(self, path: str, mtime: float) -> None:
        if path in self.tree.files:
            self.tree.files[path].mtime = mtime

    async def aclose(self) -> None:
        self.closed = True


class MemoryStorageFactory:
    """Hands out MemoryStorage over one tree per backend root."""

    def __init__(self) -> None:
        self.trees: dict[str, MemoryTree] = {}
        self.known_types = {"memory", "sftp", "local"}

    def create(self, backend: BackendSpec) -> MemoryStorage:
        if backend.type not in self.known_types:
            raise OptionError(f"unknown backend type {backend.type!r}")
        return MemoryStorage(self.trees.setdefault(backend.root, MemoryTree()))
