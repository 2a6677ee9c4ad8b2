"""`CacheStore` on a local directory, one per volume: `<cache-dir>/vfs/<volume>/`.

    data/<path>   the item's data, a sparse file mirroring the volume's path
    meta/<path>   its metadata record (JSON, see `domain.cache_record`)
    tmp/          records being written, renamed into meta/ when complete

Beside it, in `aside_dir` (the worker uses `<cache-dir>/corrupt/<volume>/`, which
outlives the volume's removal; by default `corrupt/` in the root):

    <stamp>/<path>{,.record}
                  the data and record of an item whose record could not be read:
                  kept for the operator, never uploaded, never evicted

Paths come normalised from `domain.paths`; they are checked again here (no "..",
no absolute path, no NUL) and files are opened without following symlinks, so a
name can never reach outside the cache directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio.to_thread
from loguru import logger

T = TypeVar("T")

_PREAD_PIECE = 16 * 1024 * 1024
_SPARSE_PROBE = 4 * 1024 * 1024
_PRUNE_RACES = 3  # tries of a create whose directory a concurrent prune may take


async def _io(func: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(func)


def cache_root(cache_dir: str, volume: str) -> str:
    if not volume or "/" in volume or volume in (".", ".."):
        raise ValueError(f"bad volume name {volume!r}")
    return os.path.join(cache_dir, "vfs", volume)


def _components(path: str) -> list[str]:
    parts = path.split("/") if path else []
    for part in parts:
        if part in ("", ".", "..") or "\0" in part:
            raise PermissionError(errno.EACCES, "unsafe cache path", path)
    if not parts:
        raise PermissionError(errno.EACCES, "the volume root is not a cache item", path)
    return parts


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskCacheFile:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def pread(self, offset: int, size: int) -> bytes:
        parts: list[bytes] = []
        done = 0
        while done < size:
            chunk = os.pread(self._fd, min(size - done, _PREAD_PIECE), offset + done)
            if not chunk:
                break
            parts.append(chunk)
            done += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def pwrite(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], offset + done)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def length(self) -> int:
        return os.fstat(self._fd).st_size

    async def sync(self) -> None:
        fd = self._fd
        await _io(lambda: os.fsync(fd))

    async def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class DiskCacheStore:
    def __init__(self, root: str, aside_dir: str | None = None) -> None:
        self.root = os.path.abspath(root)
        self._aside = os.path.abspath(aside_dir or os.path.join(self.root, "corrupt"))
        self._data = os.path.join(self.root, "data")
        self._meta = os.path.join(self.root, "meta")
        self._tmp = os.path.join(self.root, "tmp")

    def _data_path(self, path: str) -> str:
        return os.path.join(self._data, *_components(path))

    def _meta_path(self, path: str) -> str:
        return os.path.join(self._meta, *_components(path))

    async def open(self, path: str) -> DiskCacheFile:
        local = self._data_path(path)

        def open_file() -> int:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = _in_directory(local, lambda: os.open(local, flags, 0o600))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, "cache data is not a file", local)
            return fd

        # Inline, not in a thread: a local open costs less than the thread hop.
        return DiskCacheFile(open_file())

    async def save_record(self, path: str, record: bytes, *, durable: bool) -> None:
        final = self._meta_path(path)
        temp_dir = self._tmp

        def save() -> None:
            os.makedirs(temp_dir, mode=0o700, exist_ok=True)
            temp = os.path.join(temp_dir, secrets.token_hex(8))
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                try:
                    os.write(fd, record)
                    if durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                _in_directory(final, lambda: os.replace(temp, final))
            except BaseException:
                # A full disk fails the write: no half record is left to take space.
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            if durable:
                _fsync_dir(os.path.dirname(final))

        if durable:
            await _io(save)
        else:
            save()  # a small write and a rename: cheaper inline than a thread hop

    async def load_records(self) -> list[tuple[str, bytes]]:
        meta, temp_dir = self._meta, self._tmp

        def load() -> list[tuple[str, bytes]]:
            # Records half-written when a worker died: never renamed, never valid.
            shutil.rmtree(temp_dir, ignore_errors=True)
            found: list[tuple[str, bytes]] = []
            for directory, _dirs, files in os.walk(meta):
                for name in files:
                    full = os.path.join(directory, name)
                    rel = os.path.relpath(full, meta).replace(os.sep, "/")
                    try:
                        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                        try:
                            data = b""
                            while chunk := os.read(fd, 65536):
                                data += chunk
                        finally:
                            os.close(fd)
                    except OSError as exc:
                        logger.error("cache record {}: {!r}", full, exc)
                        continue
                    found.append((rel, data))
            return found

        return await _io(load)

    async def remove(self, path: str) -> None:
        data, meta = self._data_path(path), self._meta_path(path)
        stop_data, stop_meta = self._data, self._meta

        def remove() -> None:
            for target, stop in ((meta, stop_meta), (data, stop_data)):
                _remove_any(target)
                _prune_empty(os.path.dirname(target), stop)

        await _io(remove)

    async def set_aside(self, path: str) -> str | None:
        data, meta = self._data_path(path), self._meta_path(path)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        place = os.path.join(self._aside, f"{stamp}-{secrets.token_hex(3)}")
        stop_data, stop_meta = self._data, self._meta

        def set_aside() -> str | None:
            kept = False
            for source, target, stop in (
                (data, os.path.join(place, *_components(path)), stop_data),
                (meta, os.path.join(place, *_components(path)) + ".record", stop_meta),
            ):
                if not os.path.lexists(source):
                    continue
                _in_directory(target, partial(os.replace, source, target))
                _prune_empty(os.path.dirname(source), stop)
                kept = True
            return place if kept else None

        return await _io(set_aside)

    async def rename(self, src: str, dst: str) -> None:
        pairs = [
            (self._data_path(src), self._data_path(dst), self._data),
            (self._meta_path(src), self._meta_path(dst), self._meta),
        ]

        def rename() -> None:
            for old, new, stop in pairs:
                if not os.path.lexists(old):
                    _remove_any(new)
                    continue
                if os.path.isdir(new) and not os.path.islink(new):
                    shutil.rmtree(new)  # the volume's target directory was empty
                _in_directory(new, partial(os.replace, old, new))
                _prune_empty(os.path.dirname(old), stop)

        await _io(rename)

    def present_bytes(self, path: str) -> int:
        try:
            st = os.lstat(self._data_path(path))
        except OSError:
            return 0
        return st.st_blocks * 512

    def data_length(self, path: str) -> int | None:
        try:
            return os.lstat(self._data_path(path)).st_size
        except OSError:
            return None

    def free_bytes(self) -> int:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def sparse_supported(self) -> bool:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        probe = os.path.join(self.root, f".sparse-probe-{secrets.token_hex(4)}")
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, b"x", _SPARSE_PROBE - 1)
            os.fsync(fd)  # some file systems only allocate at writeback
            allocated = os.fstat(fd).st_blocks * 512
        finally:
            os.close(fd)
            os.unlink(probe)
        return allocated < _SPARSE_PROBE // 2


def _remove_any(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _in_directory(target: str, create: Callable[[], T]) -> T:
    """`create()`, which makes `target` (an open or a rename onto it), after making
    its directory. Another file's removal prunes directories it left empty, in a
    thread of its own: when that took this directory between the two steps, both
    steps run again."""
    directory = os.path.dirname(target)
    for attempt in range(_PRUNE_RACES, 0, -1):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            return create()
        except FileNotFoundError:
            if attempt == 1 or os.path.isdir(directory):
                raise  # not the race: the source is missing
    raise AssertionError("unreachable")


def _prune_empty(directory: str, stop: str) -> None:
    """Remove empty directories from `directory` up to, not including, `stop`."""
    while directory.startswith(stop + os.sep):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


def has_dirty_items(cache_dir: str, volume: str) -> bool:
    """Whether the volume's cache holds a record that says dirty: data a worker
    has to upload. Used by the daemon at start-up, without a worker."""
    meta = os.path.join(cache_root(cache_dir, volume), "meta")
    for directory, _dirs, files in os.walk(meta):
        for name in files:
            try:
                with open(os.path.join(directory, name), "rb") as f:
                    raw = json.loads(f.read())
            except (OSError, ValueError):
                continue
            if isinstance(raw, dict) and raw.get("dirty") is True:
                return True
    return False
