"""Reading an SFTP file at any offset, with pipelined requests."""

from __future__ import annotations

import asyncio
import errno

import asyncssh

from adapters.storage.sftp_errors import is_lost, os_error
from adapters.storage.sftp_options import SftpOptions, request_size
from adapters.storage.sftp_pool import SftpPool


class SftpReader:
    """Keeps up to `concurrency` read requests of the request size in flight; the
    file is reopened, once, after the connection under it was lost. It holds a
    lease from open to close, so the connection is not closed for being idle."""

    def __init__(self, pool: SftpPool, options: SftpOptions, path: str, remote: str) -> None:
        self._pool, self._options = pool, options
        self._path, self._remote = path, remote
        self._lease = pool.lease(transfer=True)
        self._file: asyncssh.SFTPClientFile | None = None
        self._closed = False

    async def open(self) -> None:
        if self._closed:
            raise ValueError("read on a closed file")
        try:
            sftp = await self._lease.channel()
            block = request_size(self._options.chunk_size, sftp.limits.max_read_len)
            # Stat and open in one round trip: OpenSSH opens directories for
            # reading, so the type must be checked separately.
            attrs, handle = await asyncio.gather(
                sftp.stat(self._remote),
                sftp.open(
                    self._remote, "rb", block_size=block, max_requests=self._options.concurrency
                ),
                return_exceptions=True,
            )
            if isinstance(handle, BaseException):
                raise handle
            self._file = handle
            if isinstance(attrs, BaseException):
                raise attrs
            if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                raise OSError(errno.EISDIR, "is a directory", self._path)
        except asyncssh.SFTPError as exc:
            await self.close()
            if is_lost(exc):
                raise self._pool.unavailable(self._lease.lost(exc)) from None
            raise os_error(exc, self._path) from None
        except BaseException:
            await self.close()
            raise

    async def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""

        async def attempt() -> bytes:
            if self._file is None:
                await self.open()
            assert self._file is not None
            try:
                data: bytes = await self._file.read(size, offset)
                return data
            except (asyncssh.Error, ConnectionError) as exc:
                if not is_lost(exc):
                    assert isinstance(exc, asyncssh.SFTPError)  # all others are losses
                    raise os_error(exc, self._path) from None
                self._file = None
                raise self._lease.lost(exc) from None

        return await self._pool.retry_once(attempt, retry=True)

    async def close(self) -> None:
        self._closed = True
        file, self._file = self._file, None
        if file is not None:
            try:
                await file.close()
            except (asyncssh.Error, ConnectionError):
                pass  # the connection is gone, and the handle with it
        self._lease.release()
