"""What the fsspec and S3 storages share: error mapping in the port's terms,
timestamps, names, and the POSIX checks around a rename on stores that move
files and directories by other means.

Errors follow the port: FileNotFoundError & co. for paths, `RemoteUnavailable`
for an unreachable server, with the server's message and never a secret (secret
values are replaced by "***").
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from adapters.storage.relpath import components
from domain.errors import OptionError, RemoteUnavailable
from domain.paths import parent_of
from domain.remote_entry import RemoteEntry

CHECK_TIMEOUT: Final = 25.0  # check() must answer well inside Docker's 2-minute Create
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


@dataclass(frozen=True)
class Found:
    entry: RemoteEntry
    size_known: bool = True


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
    """An OSError a storage raised itself: errno and the volume path are set."""
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


def port_error(exc: BaseException, path: str, label: str, secrets: Iterable[str]) -> BaseException:
    """The port's form of an exception a filesystem library raised."""
    if isinstance(exc, RemoteUnavailable | OptionError) or in_port_form(exc):
        return exc
    text = redact(str(exc), secrets)
    if _is_connection_problem(exc):
        return RemoteUnavailable(f"{label}: {text or type(exc).__name__}")
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return OSError(exc.errno, redact(exc.strerror or text, secrets), path)
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
        return OSError(errno.ENOTSUP, f"{label}: not supported by this filesystem", path)
    if isinstance(exc, ValueError):
        return OSError(errno.EINVAL, text, path)
    return OSError(errno.EIO, f"{label}: {type(exc).__name__}: {text}", path)


Finder = Callable[[str], Awaitable[Found]]


async def need_parent_dir(path: str, find: Finder) -> None:
    """ENOENT unless the parent of `path` exists, ENOTDIR unless it is a directory."""
    parent = parent_of(path)
    if not components(path) or parent == "":
        return
    try:
        found = await find(parent)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such directory", parent) from None
    if not found.entry.is_dir:
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", parent)


@dataclass(frozen=True)
class Mover:
    """How a store looks up paths and moves them; `rename` adds the checks."""

    find: Finder
    rmdir: Callable[[str], Awaitable[None]]
    move_file: Callable[[str, str, RemoteEntry], Awaitable[None]]
    move_dir: Callable[[str, str], Awaitable[None]]

    async def rename(self, src: str, dst: str) -> None:
        """rename(2)'s checks, then the move: a file replaces a file, a directory
        an empty directory, never into itself, never the root."""
        source = (await self.find(src)).entry
        if components(src) == components(dst):
            return
        await need_parent_dir(dst, self.find)
        try:
            target: RemoteEntry | None = (await self.find(dst)).entry
        except FileNotFoundError:
            target = None
        if not source.is_dir:
            if target is not None and target.is_dir:
                raise IsADirectoryError(errno.EISDIR, "is a directory", dst)
            await self.move_file(src, dst, source)
            return
        if not components(src):
            raise OSError(errno.EBUSY, "the volume root cannot be moved", src)
        if dst.startswith(f"{src}/"):
            raise OSError(errno.EINVAL, "cannot move a directory into itself", dst)
        if target is not None:
            if not target.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", dst)
            await self.rmdir(dst)  # ENOTEMPTY unless empty
        await self.move_dir(src, dst)
