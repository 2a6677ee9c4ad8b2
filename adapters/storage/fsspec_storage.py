"""Any fsspec filesystem as a `RemoteStorage`; S3 through s3fs with rclone's options.

`FsspecStorage` works over fsspec's generic API: the coroutine methods (`_info`,
`_ls`, `_cat_file`...) of an async filesystem (http, gcs, az...), or the blocking
ones of a sync filesystem (memory, file, ftp...) run in worker threads so the event
loop serving FUSE keeps going. The filesystem is built on first use, inside the
running event loop, because an async filesystem's client belongs to one loop.

- Reads ask for byte ranges (`cat_file(path, start, end)`), clamped to the size
  known at open. A filesystem that ignores ranges (fsspec's http against a server
  without Range support) sends the whole file: the reader cuts the range out and
  keeps the file (up to `_WHOLE_FILE_LIMIT`) for the next reads.
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
- Options of these filesystems (`-o memory-global-store=false`) are their
  constructor's parameters, typed by its signature: bool, int, float or str.

`adapters.storage.s3.S3Storage` (type `s3`) is a FsspecStorage on s3fs whose
operations are S3 requests, so that directories, metadata and multipart transfers
behave as rclone's s3 backend does.

Errors follow the port: FileNotFoundError & co. for paths, `RemoteUnavailable`
for an unreachable server, a missing bucket or refused credentials, with the
server's message and never a secret (secret values are replaced by "***").
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
import posixpath
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import IO, Any, Final

import anyio
import anyio.to_thread
import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from loguru import logger

from adapters.storage.relpath import components
from application.ports import RemoteReader, RemoteWriter
from domain.backends import is_secret_option
from domain.errors import OptionError, RemoteUnavailable
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.values import parse_bool, parse_int
from domain.volume import BackendSpec

OptionValue = str | int | float | bool

CHECK_TIMEOUT: Final = 25.0  # check() must answer well inside Docker's 2-minute Create
_PIPE_LIMIT = 64 * 1024 * 1024  # uploads up to this go in one pipe_file call
_WHOLE_FILE_LIMIT = 256 * 1024 * 1024  # a range-ignoring reader keeps files up to this
_IO_CHUNK = 1024 * 1024

# Protocols that are not volumes of their own: wrappers around another
# filesystem, or ones served by a dedicated adapter (sftp on asyncssh, s3).
_NOT_VOLUMES = frozenset(
    {
        "async_wrapper",
        "asynclocal",
        "asyncwrapper",
        "blockcache",
        "cached",
        "dask",
        "data",
        "dir",
        "filecache",
        "generic",
        "reference",
        "s3a",
        "simplecache",
        "ssh",
        "sftp",
    }
)
_READ_ONLY_PROTOCOLS = frozenset({"http", "https", "github", "gist", "zip", "tar", "libarchive"})
# Filesystems whose info() cannot tell a directory from a file (an HTTP URL is a
# page either way): a path's kind comes from its parent's listing.
_KIND_FROM_LISTING = frozenset({"http", "https"})
# Constructor parameters cloudvol sets itself.
_MANAGED = frozenset(
    {
        "asynchronous",
        "loop",
        "skip_instance_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
        "batch_size",
        "fs",
        "target_protocol",
        "target_options",
    }
)
_CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


# --- protocols and their options ----------------------------------------------


@lru_cache(maxsize=1)
def fsspec_protocols() -> tuple[str, ...]:
    """The installed fsspec protocols that can back a volume (imports each once)."""
    found: list[str] = []
    for protocol in sorted(fsspec.available_protocols()):
        if protocol in _NOT_VOLUMES:
            continue
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError):
            continue  # its library is not installed
        found.append(protocol)
    return tuple(found)


def filesystem_class(protocol: str) -> type[Any] | None:
    """The fsspec class for `protocol`, or None when it is not an available volume type."""
    if protocol not in fsspec_protocols():
        return None
    cls: type[Any] = fsspec.get_filesystem_class(protocol)
    return cls


class _Kind:
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    STRUCTURED = "structured"  # dicts, lists, callables: no text form


_SCALARS = {"bool": _Kind.BOOL, "int": _Kind.INT, "float": _Kind.FLOAT, "str": _Kind.STR}


def _annotation_kind(annotation: object) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = str(text).replace("Optional[", "").replace("]", "")
    kinds = {part.strip() for part in text.split("|")} - {"None", ""}
    if len(kinds) == 1:
        return _SCALARS.get(kinds.pop(), _Kind.STRUCTURED)
    return _Kind.STRUCTURED if kinds else None


def _default_kind(default: object) -> str:
    if isinstance(default, bool):
        return _Kind.BOOL
    if isinstance(default, int):
        return _Kind.INT
    if isinstance(default, float):
        return _Kind.FLOAT
    if default is None or isinstance(default, str):
        return _Kind.STR  # None: no hint; names, URLs and credentials are text
    return _Kind.STRUCTURED


def filesystem_parameters(cls: type[Any]) -> dict[str, str]:
    """The constructor parameters of an fsspec class and how to read their values."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    kinds: dict[str, str] = {}
    for name, param in signature.parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        kinds[name] = _annotation_kind(param.annotation) or _default_kind(param.default)
    return kinds


def _accepts_kwargs(cls: type[Any]) -> bool:
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def fsspec_options(
    protocol: str, cls: type[Any], options: Mapping[str, OptionValue]
) -> dict[str, object]:
    """Type the raw `<protocol>-<option>` values by the class's constructor."""
    params = filesystem_parameters(cls)
    offered = sorted(name for name, kind in params.items() if name not in _MANAGED)
    typed: dict[str, object] = {}
    for name, value in sorted(options.items()):
        label = f"{protocol}-{name.replace('_', '-')}"
        kind = params.get(name)
        if name in _MANAGED:
            raise OptionError(f"{label}: set by cloudvol itself, not an option")
        if kind is None:
            raise OptionError(
                f'unsupported backend option "{label}" (the {protocol} options are: '
                f"{', '.join(o.replace('_', '-') for o in offered) or 'none'})"
            )
        if kind == _Kind.STRUCTURED:
            raise OptionError(f"{label}: takes a structured value, not supported yet")
        raw = value if isinstance(value, str) else str(value)
        try:
            typed[name] = _parse_kind(kind, label, raw)
        except OptionError:
            if is_secret_option(name):
                raise OptionError(f"{label}: invalid {kind} value (not shown)") from None
            raise
    return typed


def _parse_kind(kind: str, label: str, raw: str) -> object:
    if kind == _Kind.BOOL:
        return parse_bool(label, raw)
    if kind == _Kind.INT:
        return parse_int(label, raw)
    if kind == _Kind.FLOAT:
        try:
            return float(raw)
        except ValueError:
            raise OptionError(f'{label}: invalid number "{raw}" (e.g. 1.5)') from None
    return raw


# --- shared helpers ------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def to_timestamp(value: object) -> float | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return to_timestamp(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def in_port_form(exc: BaseException) -> bool:
    """An OSError this module raised itself: errno and the volume path are set."""
    return isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None


def valid_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _is_connection_problem(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS:
        return True
    # aiohttp's and botocore's connection errors, by name: no import of either needed.
    module = type(exc).__module__.split(".")[0]
    name = type(exc).__name__
    return module in ("aiohttp", "botocore", "urllib3") and any(
        word in name for word in ("Connect", "Disconnect", "Timeout", "Connection")
    )


async def _in_thread(func: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(func)


@dataclass(frozen=True)
class Found:
    entry: RemoteEntry
    size_known: bool = True


# --- the generic storage -------------------------------------------------------


class FsspecStorage:
    """`RemoteStorage` over an fsspec filesystem; see the module docstring."""

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
            return await method(*args, **kwargs)
        return await _in_thread(partial(getattr(fs, name), *args, **kwargs))

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
        if isinstance(exc, RemoteUnavailable | OptionError) or in_port_form(exc):
            return exc
        text = redact(str(exc), self._secrets)
        if _is_connection_problem(exc):
            return RemoteUnavailable(f"{self.label}: {text or type(exc).__name__}")
        if isinstance(exc, OSError):
            if exc.errno is not None:
                return OSError(exc.errno, redact(exc.strerror or text, self._secrets), path)
            for kind, code in (
                (FileNotFoundError, errno.ENOENT),
                (FileExistsError, errno.EEXIST),
                (IsADirectoryError, errno.EISDIR),
                (NotADirectoryError, errno.ENOTDIR),
                (PermissionError, errno.EACCES),
            ):
                if isinstance(exc, kind):
                    return OSError(code, os.strerror(code), path)
            return OSError(errno.EIO, text, path)
        if isinstance(exc, NotImplementedError):
            return OSError(errno.ENOTSUP, f"{self.label}: not supported by this filesystem", path)
        if isinstance(exc, ValueError):
            return OSError(errno.EINVAL, text, path)
        return OSError(errno.EIO, f"{self.label}: {type(exc).__name__}: {text}", path)

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
        parent = parent_of(path)
        if not components(path) or parent == "":
            return
        try:
            found = await self._find(parent)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent) from None
        if not found.entry.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", parent)

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
            prefix = f"{base}/"
            if not name_full.startswith(prefix):
                continue  # not a child (a link elsewhere on an HTTP index page)
            name = name_full[len(prefix) :]
            if self._kind_from_listing:
                from urllib.parse import unquote

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
        return FsspecReader(self, path, found.entry.size if found.size_known else -1)

    async def _read_range(self, path: str, start: int, end: int) -> bytes:
        data = await self._guard(
            path, self._run("cat_file", self._full(path), start=start, end=end)
        )
        return bytes(data)

    async def open_writer(self, path: str) -> RemoteWriter:
        self._need_writable(path)
        await self._check_new_file(path)
        return FsspecWriter(self, path, await _in_thread(_temp_file))

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
        size = await _in_thread(lambda: spool.seek(0, os.SEEK_END))
        if size <= _PIPE_LIMIT:

            def read_all() -> bytes:
                spool.seek(0)
                return spool.read()

            data = await _in_thread(read_all)
            await self._guard(path, self._run("pipe_file", full, data))
            return
        # put_file wants a path: copy the spool to a named file.
        with tempfile.NamedTemporaryFile(prefix="cloudvol-upload-") as named:

            def copy() -> None:
                spool.seek(0)
                while chunk := spool.read(_IO_CHUNK):
                    named.write(chunk)
                named.flush()

            await _in_thread(copy)
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
        """The checks every store shares; the moves themselves are `_move_file` and
        `_move_dir`, which a store with its own requests (S3) overrides."""
        self._need_writable(src)
        source = (await self._find(src)).entry
        if components(src) == components(dst):
            return
        await self._need_parent_dir(dst)
        try:
            target: RemoteEntry | None = (await self._find(dst)).entry
        except FileNotFoundError:
            target = None
        if not source.is_dir:
            if target is not None and target.is_dir:
                raise IsADirectoryError(errno.EISDIR, "is a directory", dst)
            await self._move_file(src, dst, source)
            return
        if not components(src):
            raise OSError(errno.EBUSY, "the volume root cannot be moved", src)
        if dst.startswith(f"{src}/"):
            raise OSError(errno.EINVAL, "cannot move a directory into itself", dst)
        if target is not None:
            if not target.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", dst)
            await self.rmdir(dst)  # ENOTEMPTY unless empty
        await self._move_dir(src, dst)

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
            await self._guard(path, _in_thread(lambda: os.utime(local, (mtime, mtime))))
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


def _temp_file() -> IO[bytes]:
    # Unnamed: it vanishes with the process, whatever happens to the upload.
    return tempfile.TemporaryFile(prefix="cloudvol-upload-")


class FsspecReader:
    def __init__(self, storage: FsspecStorage, path: str, size: int) -> None:
        self._storage, self._path, self._size = storage, path, size  # size -1: unknown
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
        data = await self._storage._read_range(self._path, offset, end)
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
    def __init__(self, storage: FsspecStorage, path: str, spool: IO[bytes]) -> None:
        self._storage, self._path = storage, path
        self._spool: IO[bytes] | None = spool

    async def write(self, data: bytes) -> None:
        spool = self._spool
        if spool is None:
            raise ValueError("write on a finished upload")
        await _in_thread(lambda: spool.write(data))

    async def commit(self) -> None:
        spool = self._spool
        if spool is None:
            raise ValueError("commit on a finished upload")
        self._spool = None
        try:
            await self._storage._upload(self._path, spool)
        finally:
            await _in_thread(spool.close)

    async def abort(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            await _in_thread(spool.close)


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
        if _accepts_kwargs(cls):
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
