"""Any fsspec filesystem as a `RemoteStorage`.

`FsspecStorage` works over fsspec's generic API: the coroutine methods (`_info`,
`_ls`, `_cat_file`...) of an async filesystem (http, gcs, az...), or the blocking
ones of a sync filesystem (memory, file, ftp...) run in worker threads so the event
loop serving FUSE keeps going. The filesystem is built on first use, inside the
running event loop, because an async filesystem's client belongs to one loop.

- Reads ask for byte ranges (`cat_file(path, start, end)`), clamped to the size
  known at open. A filesystem that ignores ranges (fsspec's http against a server
  without Range support) sends the whole file: the reader cuts the range out and
  keeps the file (up to `_WHOLE_FILE_LIMIT`, fsspec_files.py) for the next reads.
- Writes go to an unnamed local temp file; commit uploads it in one call
  (`pipe_file`, which replaces the file atomically in memory and object stores,
  or `put_file` for big files); abort deletes the temp file: nothing reaches the
  remote before commit.
- mkdir on a store without real directories (the filesystem accepts mkdir and
  keeps nothing) is recorded in memory for this storage: the directory is listed
  until removed, or until the process ends.
- Modification times: fsspec has no call to set them. They are set in the memory
  and local filesystems; elsewhere `set_mtime` changes nothing, as rclone does for
  backends that cannot keep them (the VFS keeps the time in memory).
- Options of these filesystems are typed by fsspec_protocols.py; errors follow
  the port (storage_common.py).
"""

from __future__ import annotations

import errno
import inspect
import os
import posixpath
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import IO, Any
from urllib.parse import unquote

import anyio
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from loguru import logger

from adapters.storage.fsspec_files import FsspecReader, FsspecWriter, in_thread, temp_file
from adapters.storage.fsspec_protocols import accepts_kwargs, filesystem_class, fsspec_options
from adapters.storage.relpath import components
from adapters.storage.storage_common import (
    CHECK_TIMEOUT,
    Found,
    Mover,
    need_parent_dir,
    port_error,
    redact,
    to_timestamp,
    valid_name,
)
from application.ports import RemoteReader, RemoteWriter
from domain.backends import is_secret_option
from domain.errors import OptionError, RemoteUnavailable
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec

# A server that answers "busy, try again" (WebDAV's 423 Locked while another
# request holds the file, 429, 503) gets this many more tries, as rclone's pacer
# gives them, with a pause that doubles from _RETRY_PAUSE up to _MAX_RETRY_PAUSE.
_TRANSIENT_RETRIES = 8
_RETRY_PAUSE = 0.05
_MAX_RETRY_PAUSE = 1.0
_PIPE_LIMIT = 64 * 1024 * 1024  # uploads up to this go in one pipe_file call
_IO_CHUNK = 1024 * 1024
_READ_ONLY_PROTOCOLS = frozenset({"http", "https", "github", "gist", "zip", "tar", "libarchive"})
# Filesystems whose info() cannot tell a directory from a file (an HTTP URL is a
# page either way): a path's kind comes from its parent's listing.
_KIND_FROM_LISTING = frozenset({"http", "https"})


class FsspecStorage:
    """`RemoteStorage` over an fsspec filesystem; see the module docstring."""

    retry_pause = _RETRY_PAUSE  # the first pause before trying a busy server again

    def __init__(
        self,
        make_fs: Callable[[], Any],
        root: str,
        *,
        label: str,
        read_only: bool = False,
        kind_from_listing: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        self._make_fs = make_fs
        self._fs: Any = None
        self.root = root if root in ("", "/") else root.rstrip("/")
        self.label = label
        self.read_only = read_only
        self._kind_from_listing = kind_from_listing
        self._secrets = tuple(s for s in secrets if s)
        self._virtual_dirs: set[str] = set()
        self._created = time.time()

    # the filesystem

    def filesystem(self) -> Any:
        """The fsspec filesystem, built on first use (call inside the event loop)."""
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    def _is_async(self) -> bool:
        fs = self.filesystem()
        return bool(getattr(fs, "async_impl", False) and getattr(fs, "asynchronous", False))

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        fs = self.filesystem()
        if self._is_async():
            method = getattr(fs, f"_{name}", None)
            if method is None:
                raise OSError(errno.ENOTSUP, f"{self.label}: {name} is not supported")
            return await self._retrying(lambda: method(*args, **kwargs))
        call = partial(getattr(fs, name), *args, **kwargs)
        return await self._retrying(lambda: in_thread(call))

    def _transient(self, exc: BaseException) -> bool:
        """Whether `exc` says the server is busy and the same call may succeed soon;
        a filesystem whose server says so overrides this."""
        return False

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        pause = self.retry_pause
        for retries_left in range(_TRANSIENT_RETRIES, -1, -1):
            try:
                return await attempt()
            except Exception as exc:
                if retries_left == 0 or not self._transient(exc):
                    raise
                logger.debug("{}: {}; trying again in {:.2f} s", self.label, exc, pause)
            await anyio.sleep(pause)
            pause = min(pause * 2, _MAX_RETRY_PAUSE)
        raise AssertionError("unreachable")

    def _full(self, path: str) -> str:
        parts = components(path)
        if not parts:
            return self.root
        return posixpath.join(self.root, *parts) if self.root else "/".join(parts)

    def _strip(self, full: str) -> str:
        stripped: str = self.filesystem()._strip_protocol(full)
        return stripped.rstrip("/")

    def _error(self, exc: BaseException, path: str) -> BaseException:
        """The port's form of an exception raised by the filesystem."""
        return port_error(exc, path, self.label, self._secrets)

    async def _guard(self, path: str, coro: Any) -> Any:
        try:
            return await coro
        except Exception as exc:
            raise self._error(exc, path) from None

    def _need_writable(self, path: str) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, f"{self.label} is read-only", path)

    # lookups

    def _entry(self, name: str, info: Mapping[str, Any]) -> RemoteEntry:
        is_dir = info.get("type") == "directory"
        size = info.get("size")
        mtime = self._mtime(info)
        return RemoteEntry(
            name=name,
            is_dir=is_dir,
            size=0 if is_dir or not isinstance(size, int) else size,
            mtime=self._created if mtime is None else mtime,
        )

    def _mtime(self, info: Mapping[str, Any]) -> float | None:
        fs = self.filesystem()
        if isinstance(fs, MemoryFileSystem) and info.get("type") == "file":
            item = fs.store.get(fs._strip_protocol(str(info.get("name", ""))))
            if item is not None:
                return to_timestamp(getattr(item, "modified", None))
        for key in ("mtime", "LastModified", "last_modified", "modified", "updated", "created"):
            stamp = to_timestamp(info.get(key))
            if stamp is not None:
                return stamp
        return None

    async def _find(self, path: str) -> Found:
        """What is at `path`; FileNotFoundError if nothing."""
        if path == "" and self._kind_from_listing:
            return Found(RemoteEntry("", True, 0, self._created))
        if path in self._virtual_dirs:
            return Found(RemoteEntry(basename(path), True, 0, self._created))
        if self._kind_from_listing:
            for entry in await self.list_dir(parent_of(path)):
                if entry.name == basename(path):
                    if entry.is_dir:
                        return Found(entry)
                    info = await self._guard(path, self._run("info", self._full(path)))
                    size = info.get("size")
                    return Found(self._entry(entry.name, info), isinstance(size, int))
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        try:
            info = await self._guard(path, self._run("info", self._full(path)))
        except FileNotFoundError:
            if components(path):
                raise
            # The root of a store without directories: an empty prefix, after check().
            return Found(RemoteEntry("", True, 0, self._created))
        size = info.get("size")
        return Found(self._entry(basename(path), info), isinstance(size, int))

    async def _exists(self, path: str) -> bool:
        try:
            await self._find(path)
        except FileNotFoundError:
            return False
        return True

    async def _need_parent_dir(self, path: str) -> None:
        await need_parent_dir(path, self._find)

    # the port

    async def check(self) -> None:
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await self._check_root()
        except TimeoutError:
            raise RemoteUnavailable(f"{self.label}: no answer within {CHECK_TIMEOUT:g} s") from None
        except OSError as exc:
            raise RemoteUnavailable(
                f"{self.label}: root {self.root or '/'!r}: {redact(str(exc), self._secrets)}"
            ) from None

    async def _check_root(self) -> None:
        if self._kind_from_listing:
            await self.list_dir("")
            return
        try:
            info = await self._guard("", self._run("info", self.root))
        except FileNotFoundError:
            if self.read_only:
                raise RemoteUnavailable(f"{self.label}: {self.root!r} does not exist") from None
            # As rclone does on first write, and the sftp adapter at check: make the
            # root (a no-op on stores without directories, where it is a prefix).
            await self._guard("", self._run("makedirs", self.root, exist_ok=True))
            return
        if info.get("type") != "directory":
            raise RemoteUnavailable(f"{self.label}: {self.root!r} is not a directory")

    async def stat(self, path: str) -> RemoteEntry:
        return (await self._find(path)).entry

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        full = self._full(path)
        try:
            infos = await self._guard(path, self._run("ls", full, detail=True))
        except FileNotFoundError:
            if path in self._virtual_dirs or not components(path):
                infos = []
            else:
                raise
        base = self._strip(full)
        entries: dict[str, RemoteEntry] = {}
        for info in infos:
            name_full = self._strip(str(info.get("name", "")))
            if name_full == base:
                if info.get("type") != "directory":
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
                continue
            prefix = f"{base}/" if base else ""  # "": paths relative to the server's root
            if not name_full.startswith(prefix):
                continue  # not a child (a link elsewhere on an HTTP index page)
            name = name_full[len(prefix) :].lstrip("/")  # FTP lists "/f" under root "/"
            if self._kind_from_listing:
                name = unquote(name)
            if valid_name(name):
                entries[name] = self._entry(name, info)
        for virtual in self._virtual_dirs:
            if parent_of(virtual) == path and basename(virtual) not in entries:
                entries[basename(virtual)] = RemoteEntry(basename(virtual), True, 0, self._created)
        if not entries and path not in self._virtual_dirs and not infos and path:
            # Object stores list a file's key as empty: say what it is.
            found = await self._find(path)
            if not found.entry.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        return sorted(entries.values(), key=lambda e: e.name)

    async def open_reader(self, path: str) -> RemoteReader:
        found = await self._find(path)
        if found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return FsspecReader(
            partial(self._read_range, path), found.entry.size if found.size_known else -1
        )

    async def _read_range(self, path: str, start: int, end: int) -> bytes:
        data = await self._guard(
            path, self._run("cat_file", self._full(path), start=start, end=end)
        )
        return bytes(data)

    async def open_writer(self, path: str) -> RemoteWriter:
        self._need_writable(path)
        await self._check_new_file(path)
        return FsspecWriter(partial(self._upload, path), await in_thread(temp_file))

    async def _check_new_file(self, path: str) -> None:
        if not components(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        try:
            found = await self._find(path)
        except FileNotFoundError:
            await self._need_parent_dir(path)
            return
        if found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)

    async def _upload(self, path: str, spool: IO[bytes]) -> None:
        full = self._full(path)
        size = await in_thread(lambda: spool.seek(0, os.SEEK_END))
        if size <= _PIPE_LIMIT:

            def read_all() -> bytes:
                spool.seek(0)
                return spool.read()

            data = await in_thread(read_all)
            await self._guard(path, self._run("pipe_file", full, data))
            return
        # put_file wants a path: copy the spool to a named file.
        with tempfile.NamedTemporaryFile(prefix="cloudvol-upload-") as named:

            def copy() -> None:
                spool.seek(0)
                while chunk := spool.read(_IO_CHUNK):
                    named.write(chunk)
                named.flush()

            await in_thread(copy)
            await self._guard(path, self._run("put_file", named.name, full))

    async def mkdir(self, path: str) -> None:
        self._need_writable(path)
        if await self._exists(path):
            raise FileExistsError(errno.EEXIST, "file exists", path)
        await self._need_parent_dir(path)
        full = self._full(path)
        await self._guard(path, self._run("mkdir", full, create_parents=False))
        try:
            await self._guard(path, self._run("info", full))
        except FileNotFoundError:
            self._virtual_dirs.add(path)  # the store keeps no empty directories

    async def rmdir(self, path: str) -> None:
        self._need_writable(path)
        if not components(path):
            raise OSError(errno.EBUSY, "the volume root cannot be removed", path)
        found = await self._find(path)
        if not found.entry.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        if await self.list_dir(path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        if path in self._virtual_dirs:
            self._virtual_dirs.discard(path)
            return
        await self._guard(path, self._run("rmdir", self._full(path)))

    async def remove(self, path: str) -> None:
        self._need_writable(path)
        found = await self._find(path)
        if found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        await self._guard(path, self._run("rm_file", self._full(path)))

    async def rename(self, src: str, dst: str) -> None:
        self._need_writable(src)
        await Mover(self._find, self.rmdir, self._move_file, self._move_dir).rename(src, dst)

    async def _move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        await self._guard(src, self._run("mv", self._full(src), self._full(dst)))

    async def _move_dir(self, src: str, dst: str) -> None:
        moved = {v for v in self._virtual_dirs if v == src or v.startswith(f"{src}/")}
        if src not in moved:
            await self._guard(
                src, self._run("mv", self._full(src), self._full(dst), recursive=True)
            )
        self._virtual_dirs -= moved
        self._virtual_dirs |= {dst + v[len(src) :] for v in moved}

    async def set_mtime(self, path: str, mtime: float) -> None:
        found = await self._find(path)
        if found.entry.is_dir:
            return  # directories keep their times in the VFS
        fs = self.filesystem()
        full = self._full(path)
        if isinstance(fs, MemoryFileSystem):
            item = fs.store.get(fs._strip_protocol(full))
            if item is not None:
                item.modified = datetime.fromtimestamp(mtime, tz=UTC)
        elif isinstance(fs, LocalFileSystem):
            local = fs._strip_protocol(full)
            await self._guard(path, in_thread(lambda: os.utime(local, (mtime, mtime))))
        else:
            logger.debug("{}: cannot keep modification times; {} keeps its own", self.label, path)

    async def aclose(self) -> None:
        fs, self._fs = self._fs, None
        session = getattr(fs, "_session", None)
        close = getattr(session, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


# --- builders ----------------------------------------------------------------------


def build_fsspec_storage(spec: BackendSpec) -> FsspecStorage:
    """A storage for an installed fsspec protocol named by `spec.type`."""
    protocol = spec.type
    cls = filesystem_class(protocol)
    if cls is None:
        raise OptionError(f"{protocol!r} is not an installed fsspec protocol")
    kwargs = fsspec_options(protocol, cls, spec.options)
    if issubclass(cls, LocalFileSystem) and not spec.root.startswith("/"):
        raise OptionError(f'the {protocol} backend needs an absolute path, got "{spec.root}"')
    secrets = [str(v) for k, v in kwargs.items() if is_secret_option(k) and isinstance(v, str)]

    def make() -> Any:
        extra: dict[str, Any] = {"skip_instance_cache": True}
        if getattr(cls, "async_impl", False):
            extra["asynchronous"] = True
        if accepts_kwargs(cls):
            extra["use_listings_cache"] = False  # the VFS keeps its own dir cache
        return cls(**kwargs, **extra)

    return FsspecStorage(
        make,
        spec.root,
        label=f"{protocol} {spec.root or '/'}",
        read_only=protocol in _READ_ONLY_PROTOCOLS,
        kind_from_listing=protocol in _KIND_FROM_LISTING,
        secrets=secrets,
    )
