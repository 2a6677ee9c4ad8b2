"""An in-memory RemoteStorage, faithful to the port's conventions, for unit tests.

tests/unit/test_memory_storage_contract.py runs it through the contract every
adapter passes (tests/storage_contract.py), so a test that passes against it
does not rely on a leniency no real remote has.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field

from adapters.storage.relpath import components
from domain.errors import OptionError, RemoteUnavailable
from domain.metadata import FileMetadata
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec


@dataclass(eq=False)
class _File:
    """A file's content; two paths holding the same `_File` are hard links."""

    data: bytearray
    mtime: float
    meta: FileMetadata = field(default_factory=FileMetadata)


@dataclass
class MemoryTree:
    """The remote's content; shared by every storage made on it.

    Tests arrange and inspect it directly (`put`, `files`, `dirs`); setting
    `reachable` to False makes every storage call on it fail as a lost connection.
    """

    files: dict[str, _File] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {""})
    reachable: bool = True
    calls: list[str] = field(default_factory=list)
    dir_meta: dict[str, FileMetadata] = field(default_factory=dict)
    hard_links: bool = True  # False: a remote without hard links

    def put(self, path: str, data: bytes) -> None:
        """Arrange a file, making its missing parent directories (test setup only)."""
        parent = parent_of(path)
        while parent not in self.dirs:
            self.dirs.add(parent)
            parent = parent_of(parent)
        self.files[path] = _File(bytearray(data), time.time())

    def get(self, path: str) -> bytes:
        return bytes(self.files[path].data)

    def need_reachable(self) -> None:
        if not self.reachable:
            raise RemoteUnavailable("connection refused (fake)")

    def need_dir(self, path: str) -> None:
        if path in self.files:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)

    def children(self, path: str) -> list[str]:
        return [p for p in (*self.dirs, *self.files) if p and parent_of(p) == path]


class _Reader:
    def __init__(self, tree: MemoryTree, path: str) -> None:
        self._tree, self._path = tree, path

    async def read(self, offset: int, size: int) -> bytes:
        self._tree.need_reachable()
        self._tree.calls.append(f"read {self._path} {offset} {size}")
        if self._path not in self._tree.files:
            # Like an object store's ranged GET after the object was deleted.
            raise FileNotFoundError(errno.ENOENT, "no such file", self._path)
        return bytes(self._tree.files[self._path].data[offset : offset + size])

    async def close(self) -> None:
        pass


class _Writer:
    def __init__(self, tree: MemoryTree, path: str) -> None:
        self._tree, self._path, self._buf = tree, path, bytearray()

    async def write(self, data: bytes) -> None:
        self._buf += data

    async def commit(self) -> None:
        # Checked again at commit, as a real upload's final rename would: the
        # directory may have gone, or a directory taken the name, since open.
        self._tree.need_reachable()
        self._tree.need_dir(parent_of(self._path))
        if self._path in self._tree.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", self._path)
        self._tree.files[self._path] = _File(bytearray(self._buf), time.time())

    async def abort(self) -> None:
        self._buf.clear()


class MemoryStorage:
    def __init__(self, tree: MemoryTree | None = None) -> None:
        self.tree = tree if tree is not None else MemoryTree()
        self.closed = False

    def _checked(self, path: str) -> str:
        """`path` as stored, after the checks every call makes first."""
        self.tree.need_reachable()
        return "/".join(components(path))

    def _entry(self, path: str) -> RemoteEntry:
        if path in self.tree.dirs:
            meta = self.tree.dir_meta.get(path)
            return RemoteEntry(basename(path), True, 0, 0.0, metadata=meta)
        if path in self.tree.files:
            f = self.tree.files[path]
            links = sum(1 for other in self.tree.files.values() if other is f)
            meta = f.meta.merged(FileMetadata(mtime=f.mtime))
            return RemoteEntry(
                basename(path), False, len(f.data), f.mtime, metadata=meta, nlink=links
            )
        raise FileNotFoundError(errno.ENOENT, "no such file", path)

    async def check(self) -> None:
        self.tree.need_reachable()

    async def stat(self, path: str) -> RemoteEntry:
        return self._entry(self._checked(path))

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        path = self._checked(path)
        self.tree.need_dir(path)
        return sorted((self._entry(p) for p in self.tree.children(path)), key=lambda e: e.name)

    async def open_reader(self, path: str) -> _Reader:
        path = self._checked(path)
        if self._entry(path).is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return _Reader(self.tree, path)

    async def open_writer(self, path: str) -> _Writer:
        path = self._checked(path)
        self.tree.need_dir(parent_of(path))
        if path in self.tree.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return _Writer(self.tree, path)

    async def mkdir(self, path: str) -> None:
        path = self._checked(path)
        self.tree.need_dir(parent_of(path))
        if path in self.tree.dirs or path in self.tree.files:
            raise FileExistsError(errno.EEXIST, "exists", path)
        self.tree.dirs.add(path)

    async def rmdir(self, path: str) -> None:
        path = self._checked(path)
        self.tree.need_dir(path)
        if self.tree.children(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        self.tree.dirs.discard(path)

    async def remove(self, path: str) -> None:
        path = self._checked(path)
        if path in self.tree.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if path not in self.tree.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        del self.tree.files[path]

    async def rename(self, src: str, dst: str) -> None:
        src, dst = self._checked(src), self._checked(dst)
        is_dir = self._entry(src).is_dir
        self.tree.need_dir(parent_of(dst))
        if src == dst:
            return
        # POSIX rename(2)'s rules, which the sftp and local adapters inherit.
        if dst in self.tree.dirs:
            if not is_dir:
                raise IsADirectoryError(errno.EISDIR, "is a directory", dst)
            if self.tree.children(dst):
                raise OSError(errno.ENOTEMPTY, "directory not empty", dst)
        elif dst in self.tree.files and is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", dst)
        if is_dir and dst.startswith(src + "/"):
            raise OSError(errno.EINVAL, "cannot move a directory into itself", dst)
        if not is_dir:
            self.tree.files[dst] = self.tree.files.pop(src)
            return
        self.tree.dirs.discard(dst)
        for d in [d for d in self.tree.dirs if d == src or d.startswith(src + "/")]:
            self.tree.dirs.discard(d)
            self.tree.dirs.add(dst + d[len(src) :])
        for f in [f for f in self.tree.files if f.startswith(src + "/")]:
            self.tree.files[dst + f[len(src) :]] = self.tree.files.pop(f)

    async def set_mtime(self, path: str, mtime: float) -> None:
        path = self._checked(path)
        # Directories keep no time here (as on S3); the entry must exist either way.
        if not self._entry(path).is_dir:
            self.tree.files[path].mtime = mtime

    async def set_metadata(self, path: str, metadata: FileMetadata) -> None:
        path = self._checked(path)
        if self._entry(path).is_dir:
            current = self.tree.dir_meta.get(path, FileMetadata())
            self.tree.dir_meta[path] = current.merged(metadata)
            return
        f = self.tree.files[path]
        f.meta = f.meta.merged(metadata)
        if metadata.mtime is not None:
            f.mtime = metadata.mtime

    async def hard_links_supported(self) -> bool:
        return self.tree.hard_links

    async def hard_link(self, src: str, dst: str) -> None:
        src, dst = self._checked(src), self._checked(dst)
        if not self.tree.hard_links:
            raise PermissionError(errno.EPERM, "no hard links here", dst)
        if self._entry(src).is_dir:
            raise PermissionError(errno.EPERM, "a directory", src)
        self.tree.need_dir(parent_of(dst))
        if dst in self.tree.files or dst in self.tree.dirs:
            raise FileExistsError(errno.EEXIST, "exists", dst)
        self.tree.files[dst] = self.tree.files[src]

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
