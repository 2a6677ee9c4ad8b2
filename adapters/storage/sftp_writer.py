"""Uploading an SFTP file: to a hidden temporary beside the target, renamed over
it at commit, so readers never see a half-written file and an abort leaves the
old content in place. The temporary file is recorded in `PartialFiles` from before
it is created until it is gone, so one the abort could not remove (the connection
was lost) is removed later."""

from __future__ import annotations

import asyncio
import errno
import posixpath
import secrets

import asyncssh
from loguru import logger

from adapters.storage.sftp_errors import is_lost, os_error
from adapters.storage.sftp_options import SftpOptions, request_size
from adapters.storage.sftp_partials import PartialFiles
from adapters.storage.sftp_pool import SftpPool
from adapters.storage.sftp_rename import SftpRenamer
from domain.errors import RemoteUnavailable
from domain.paths import basename


class SftpWriter:
    """Appends with up to `concurrency` write requests in flight; holds a lease
    from open until committed or aborted."""

    def __init__(
        self,
        pool: SftpPool,
        renamer: SftpRenamer,
        partials: PartialFiles,
        options: SftpOptions,
        path: str,
        final: str,
    ) -> None:
        self._pool, self._renamer, self._partials = pool, renamer, partials
        self._path, self._final = path, final
        temp_name = f".{basename(path)}.{secrets.token_hex(4)}.partial"
        self._temp = posixpath.join(posixpath.dirname(final), temp_name)
        self._lease = pool.lease(transfer=True)
        self._chunk_size = options.chunk_size
        self._file: asyncssh.SFTPClientFile | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._offset = 0
        self._block = request_size(options.chunk_size, 0)
        self._slots = asyncio.Semaphore(options.concurrency)
        self._pending: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._created = False  # the temp file exists and must go on abort
        self._settled = False  # committed or aborted: the temp file's fate is known

    def _fail(self, exc: BaseException) -> OSError | RemoteUnavailable:
        if isinstance(exc, asyncssh.SFTPError) and not is_lost(exc):
            return os_error(exc, self._path)
        if isinstance(exc, OSError | RemoteUnavailable):
            return exc
        return self._pool.unavailable(self._lease.lost(exc))

    async def open(self) -> None:
        try:
            sftp = await self._lease.channel()
            self._sftp = sftp
            self._block = request_size(self._chunk_size, sftp.limits.max_write_len)
            self._partials.created(self._temp)
            target, handle = await asyncio.gather(
                sftp.stat(self._final),
                sftp.open(self._temp, "wb", block_size=self._block, max_requests=1),
                return_exceptions=True,
            )
            if isinstance(handle, BaseException):
                # A lost answer may come after the server created the file.
                self._created = is_lost(handle)
                raise handle
            self._file, self._created = handle, True
            if isinstance(target, asyncssh.SFTPAttrs):
                if target.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    raise OSError(errno.EISDIR, "is a directory", self._path)
            elif not isinstance(target, asyncssh.SFTPNoSuchFile):
                raise target
        except BaseException as exc:
            await self.abort()
            if isinstance(exc, asyncssh.Error | ConnectionError):
                raise self._fail(exc) from None
            raise

    async def _send(self, piece: bytes, offset: int) -> None:
        assert self._file is not None
        try:
            await self._file.write(piece, offset)
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._fail(self._failure)

    async def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("write on a closed upload")
        for start in range(0, len(data), self._block):
            await self._slots.acquire()
            self._raise_failure()
            piece = bytes(data[start : start + self._block])
            task = asyncio.create_task(self._send(piece, self._offset))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            self._offset += len(piece)
        self._raise_failure()

    async def commit(self) -> None:
        if self._file is None or self._sftp is None:
            raise ValueError("commit on a closed upload")
        try:
            if self._pending:
                await asyncio.gather(*self._pending)
            self._raise_failure()
            file, self._file = self._file, None
            await file.close()
            await self._renamer.replace(self._sftp, self._temp, self._final, self._path, self._path)
            self._created, self._settled = False, True
            self._partials.gone(self._temp)
        except BaseException as exc:
            await self.abort()
            if isinstance(exc, asyncssh.Error | ConnectionError):
                raise self._fail(exc) from None
            raise
        self._lease.release()

    async def abort(self) -> None:
        if self._settled:
            self._lease.release()
            return
        self._settled = True
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        file, self._file = self._file, None
        sftp, self._sftp = self._sftp, None
        created, self._created = self._created, False
        removed = not created
        try:
            if file is not None:
                await file.close()
            if sftp is not None and created:
                await sftp.remove(self._temp)
                removed = True
        except asyncssh.SFTPNoSuchFile:
            removed = True
        except (asyncssh.Error, ConnectionError) as exc:
            # The connection is gone: removed after the next one (PartialFiles).
            logger.debug("{}: could not remove {} now: {}", self._pool.where, self._temp, exc)
        if removed:
            self._partials.gone(self._temp)
        else:
            self._partials.left_behind(self._temp)
        self._lease.release()
