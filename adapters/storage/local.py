"""A local directory as a `RemoteStorage` (rclone's "local" backend).

Blocking system calls run in worker threads (`anyio.to_thread.run_sync`) so the
event loop serving FUSE keeps going. Paths are the volume's normalised relative
paths joined under the root; "..", absolute paths and NUL bytes are refused
again here. Symlinks inside the root are followed (as rclone does with
`--copy-links`), including ones that point outside it: whoever can create a
symlink in the root can already read what it points to, so this adapter does not
try to be a sandbox.

Uploads are written to a hidden `.<name>.<random>.partial` file in the target's
directory and renamed over the target at commit, so the change is atomic; abort
removes the temporary file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as stat_mod
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from adapters.storage.relpath import components
from domain.errors import OptionError, RemoteUnavailable
from domain.metadata import FileMetadata
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec

T = TypeVar("T")

_MAX_PREAD = 16 * 1024 * 1024


async def _io(func: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(func)


def _entry(name: str, st: os.stat_result) -> RemoteEntry:
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    metadata = FileMetadata(
        mode=stat_mod.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        atime=st.st_atime_ns / 1e9,
        mtime=st.st_mtime_ns / 1e9,
    )
    return RemoteEntry(
        name=name,
        is_dir=is_dir,
        size=0 if is_dir else st.st_size,
        mtime=st.st_mtime,
        metadata=metadata,
        nlink=st.st_nlink,
    )


def _set_metadata(local: str, wanted: FileMetadata) -> None:
    if wanted.mode is not None:
        os.chmod(local, wanted.mode & 0o7777)
    if wanted.uid is not None or wanted.gid is not None:
        uid = wanted.uid if wanted.uid is not None else -1
        os.chown(local, uid, wanted.gid if wanted.gid is not None else -1)
    if wanted.atime is not None or wanted.mtime is not None:
        st = os.stat(local)
        atime_ns = round(wanted.atime * 1e9) if wanted.atime is not None else st.st_atime_ns
        mtime_ns = round(wanted.mtime * 1e9) if wanted.mtime is not None else st.st_mtime_ns
        os.utime(local, ns=(atime_ns, mtime_ns))


class LocalStorage:
    def __init__(self, backend: BackendSpec) -> None:
        if backend.options:
            raise OptionError(f"unsupported local option {sorted(backend.options)[0]!r}")
        if not backend.root:
            raise OptionError("local backend needs a directory path")
        self.root = os.path.abspath(os.path.expanduser(backend.root))

    def _local(self, path: str) -> str:
        return os.path.join(self.root, *components(path))

    async def check(self) -> None:
        root = self.root

        def probe() -> None:
            try:
                st = os.stat(root)
            except FileNotFoundError:
                raise RemoteUnavailable(f'local root "{root}" does not exist') from None
            except OSError as exc:
                raise RemoteUnavailable(f'local root "{root}": {exc.strerror}') from None
            if not stat_mod.S_ISDIR(st.st_mode):
                raise RemoteUnavailable(f'local root "{root}" is not a directory')
            if not os.access(root, os.R_OK | os.X_OK):
                raise RemoteUnavailable(f'local root "{root}": permission denied')

        await _io(probe)

    async def stat(self, path: str) -> RemoteEntry:
        local = self._local(path)
        return _entry(basename(path), await _io(lambda: os.stat(local)))

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        local = self._local(path)

        def scan() -> list[RemoteEntry]:
            entries: list[RemoteEntry] = []
            with os.scandir(local) as it:
                for item in it:
                    try:
                        entries.append(_entry(item.name, item.stat()))
                    except FileNotFoundError:
                        continue  # a dangling symlink, or removed while listing
            return sorted(entries, key=lambda e: e.name)

        return await _io(scan)

    async def open_reader(self, path: str) -> LocalReader:
        local = self._local(path)

        def open_file() -> int:
            fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
            if stat_mod.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            return fd

        return LocalReader(await _io(open_file))

    async def open_writer(self, path: str) -> LocalWriter:
        final = self._local(path)
        parent = os.path.dirname(final)
        temp = os.path.join(parent, f".{basename(path)}.{secrets.token_hex(4)}.partial")

        def open_temp() -> int:
            if os.path.isdir(final):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            # 0o666 through the process umask, like any newly created file.
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)

        try:
            fd = await _io(open_temp)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent_of(path)) from None
        return LocalWriter(fd, temp, final)

    async def mkdir(self, path: str) -> None:
        local = self._local(path)
        await _io(lambda: os.mkdir(local))

    async def rmdir(self, path: str) -> None:
        local = self._local(path)
        await _io(lambda: os.rmdir(local))

    async def remove(self, path: str) -> None:
        local = self._local(path)
        await _io(lambda: os.unlink(local))

    async def rename(self, src: str, dst: str) -> None:
        old, new = self._local(src), self._local(dst)
        await _io(lambda: os.replace(old, new))

    async def set_mtime(self, path: str, mtime: float) -> None:
        local = self._local(path)
        await _io(lambda: os.utime(local, (mtime, mtime)))

    async def set_metadata(self, path: str, metadata: FileMetadata) -> None:
        local = self._local(path)
        await _io(lambda: _set_metadata(local, metadata))

    async def hard_links_supported(self) -> bool:
        return True

    async def hard_link(self, src: str, dst: str) -> None:
        old, new = self._local(src), self._local(dst)
        await _io(lambda: os.link(old, new))

    async def aclose(self) -> None:
        pass  # nothing held between calls


class LocalReader:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    async def read(self, offset: int, size: int) -> bytes:
        fd = self._fd
        if fd is None:
            raise ValueError("read on a closed file")
        if size <= 0:
            return b""

        def pread_all() -> bytes:
            # pread may return short before EOF, and allocates the size asked
            # for: read in bounded pieces until done or EOF.
            parts: list[bytes] = []
            done = 0
            while done < size:
                chunk = os.pread(fd, min(size - done, _MAX_PREAD), offset + done)
                if not chunk:
                    break
                parts.append(chunk)
                done += len(chunk)
            return b"".join(parts)

        return await _io(pread_all)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            await _io(lambda: os.close(fd))


class LocalWriter:
    def __init__(self, fd: int, temp: str, final: str) -> None:
        self._fd: int | None = fd
        self._temp, self._final = temp, final

    def _need_open(self) -> int:
        if self._fd is None:
            raise ValueError("upload already finished")
        return self._fd

    async def write(self, data: bytes) -> None:
        fd = self._need_open()
        view = memoryview(data)

        def write_all() -> None:
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])

        await _io(write_all)

    async def commit(self) -> None:
        fd = self._need_open()
        self._fd = None
        temp, final = self._temp, self._final

        def finish() -> None:
            try:
                os.fsync(fd)  # "commit returned" must mean the data is durable
            finally:
                os.close(fd)
            os.replace(temp, final)

        try:
            await _io(finish)
        except BaseException:
            await _io(lambda: _unlink_quietly(temp))
            raise

    async def abort(self) -> None:
        fd, self._fd = self._fd, None
        temp = self._temp

        def discard() -> None:
            if fd is not None:
                os.close(fd)
                _unlink_quietly(temp)

        await _io(discard)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
