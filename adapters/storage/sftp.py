"""SFTP storage written directly on asyncssh.

One SSH connection per storage, shared by a few SFTP channels and closed after
`idle_timeout` unused (adapters/storage/sftp_pool.py). Reads and writes keep up to
`concurrency` requests of `chunk_size` bytes in flight, so throughput is not
bounded by one round trip per chunk. Without an explicit `chunk_size`, a request
is as large as the server advertises (OpenSSH: 255 KiB), else the protocol's 32 KiB.

Uploads go to a hidden `.<name>.<random>.partial` beside the target and are
renamed over it at commit (posix-rename when offered), so readers never see a
half-written file and an aborted upload leaves the old content in place. (rclone
1.60 writes sftp files in place; the port promises replacement at commit.) A
temporary file an outage or a crash kept the upload from removing is removed
after the next connection (adapters/storage/sftp_partials.py).

Timeouts are rclone's (`BackendSpec.timeouts`): `--contimeout` bounds opening a
connection (TCP, SSH handshake, authentication, the SFTP channel), `--timeout`
is the idle timeout: a connection on which the server sends nothing for that
long (keepalives included) is dropped, and each request waiting on it fails;
an idempotent one (a read, a stat, a listing) is tried once more on a new
connection. So a read on a frozen server fails (EIO) after at most
`--timeout` + `--contimeout`.

`check()` creates a missing root (mkdir -p), as rclone does on the first write:
a volume pointed at a fresh directory works at once. A root that exists but is
not a directory, or cannot be created, fails `check()` with a clear message.
"""

from __future__ import annotations

import asyncio
import errno
import posixpath
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import asyncssh
from loguru import logger

from adapters.storage.library_logs import cap_at_info
from adapters.storage.relpath import components
from adapters.storage.sftp_connect import connect, server_label
from adapters.storage.sftp_errors import entry_of, has_entries, is_lost, os_error, raise_if_not_dir
from adapters.storage.sftp_metadata import check_time, links_of, set_attributes
from adapters.storage.sftp_options import SftpOptions
from adapters.storage.sftp_partials import PartialFiles
from adapters.storage.sftp_pool import ConnectionLost, SftpPool
from adapters.storage.sftp_reader import SftpReader
from adapters.storage.sftp_rename import SftpRenamer
from adapters.storage.sftp_writer import SftpWriter
from domain.errors import RemoteUnavailable
from domain.metadata import FileMetadata
from domain.paths import basename
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec, Timeouts

T = TypeVar("T")


class SftpStorage:
    """`RemoteStorage` over SFTP; see the module docstring for the behaviour."""

    def __init__(self, backend: BackendSpec) -> None:
        self.options = SftpOptions.parse(backend.options)
        connect_within = Timeouts.limit(backend.timeouts.connect)
        io_idle = Timeouts.limit(backend.timeouts.io_idle)
        root = backend.root.rstrip("/") or ("/" if backend.root.startswith("/") else "")
        self.root = root
        self._where = server_label(self.options)
        self.pool = SftpPool(
            partial(connect, self.options, connect_within, io_idle),
            where=self._where,
            idle_timeout=self.options.idle_timeout,
            start_timeout=connect_within,
        )
        self.partials = PartialFiles()
        self._sweeper: asyncio.Task[None] | None = None
        self.pool.on_connected = self._sweep_soon
        self._renamer = SftpRenamer()
        self._hard_links = True  # until the server says it has no hardlink@openssh.com
        # asyncssh.sftp logs each read and write request at DEBUG, which at -vv
        # halved read throughput; its connection-level lines stay.
        cap_at_info("asyncssh.sftp")

    def keep_partials_journal(self, directory: str) -> None:
        """Record the temporary files of uploads in `directory` (a volume's cache),
        and remove those a previous worker recorded once connected. Called before
        the first upload."""
        self.partials = PartialFiles(directory)

    def _sweep_soon(self) -> None:
        """After a new connection: remove the leftover temporary files, in the
        background (the operation that opened the connection goes first)."""
        if self.partials.leftovers() and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        for remote in self.partials.leftovers():
            try:
                async with self.pool.lease() as sftp:
                    await sftp.remove(remote)
            except asyncssh.SFTPNoSuchFile:
                self.partials.gone(remote)  # renamed or removed after all
            except (ConnectionLost, RemoteUnavailable):
                return  # the next connection tries again
            except asyncssh.SFTPError as exc:
                logger.warning("{}: cannot remove {}: {}", self._where, remote, exc.reason)
                self.partials.gone(remote)  # never to be removed by us: stop trying
            else:
                logger.info("{}: removed {}, left by an interrupted upload", self._where, remote)
                self.partials.gone(remote)

    def _remote(self, path: str) -> str:
        parts = components(path)
        if not self.root:
            return posixpath.join(*parts) if parts else "."
        return posixpath.join(self.root, *parts)

    async def _run(
        self,
        path: str,
        op: Callable[[asyncssh.SFTPClient], Awaitable[T]],
        *,
        idempotent: bool,
    ) -> T:
        """Run `op` on the metadata channel, mapping errors; reconnect and retry
        once after a lost connection when repeating `op` is harmless."""

        async def attempt() -> T:
            async with self.pool.lease() as sftp:
                try:
                    return await op(sftp)
                except asyncssh.SFTPError as exc:
                    if is_lost(exc):
                        raise  # the lease makes it ConnectionLost
                    raise os_error(exc, path) from None

        return await self.pool.retry_once(attempt, retry=idempotent)

    # RemoteStorage

    async def check(self) -> None:
        await self.pool.retry_once(self._check_root, retry=False)

    async def _check_root(self) -> None:
        async with self.pool.lease() as sftp:
            root = self._remote("")
            try:
                attrs = await sftp.stat(root)
            except asyncssh.SFTPNoSuchFile:
                try:
                    await sftp.makedirs(root, exist_ok=True)
                except asyncssh.SFTPError as exc:
                    raise RemoteUnavailable(
                        f'{self._where}: root "{root}" does not exist and cannot be created: '
                        f"{exc.reason}"
                    ) from None
                logger.info("{}: created root {!r}", self._where, root)
                return
            except asyncssh.SFTPError as exc:
                raise RemoteUnavailable(f'{self._where}: root "{root}": {exc.reason}') from None
            if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
                raise RemoteUnavailable(f'{self._where}: root "{root}" is not a directory')

    async def stat(self, path: str) -> RemoteEntry:
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> RemoteEntry:
            return entry_of(basename(path), await sftp.stat(remote))

        return await self._run(path, op, idempotent=True)

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        remote = self._remote(path)
        limit = asyncio.Semaphore(self.options.concurrency)

        async def follow(sftp: asyncssh.SFTPClient, name: str) -> RemoteEntry | None:
            async with limit:
                try:
                    return entry_of(name, await sftp.stat(posixpath.join(remote, name)))
                except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied):
                    # A dangling or unreadable symlink: rclone skips it too.
                    logger.debug("{}: skipping broken symlink {}/{}", self._where, path, name)
                    return None

        async def op(sftp: asyncssh.SFTPClient) -> list[RemoteEntry]:
            try:
                names = await sftp.readdir(remote)
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure) as exc:
                await raise_if_not_dir(sftp, exc, remote, path)
                raise
            entries: list[RemoteEntry] = []
            links: list[str] = []
            for item in names:
                name = str(item.filename)
                if name in (".", ".."):
                    continue
                if item.attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                    links.append(name)
                else:
                    entries.append(entry_of(name, item.attrs, links_of(item.longname)))
            followed = await asyncio.gather(*(follow(sftp, name) for name in links))
            entries.extend(e for e in followed if e is not None)
            return sorted(entries, key=lambda e: e.name)

        return await self._run(path, op, idempotent=True)

    async def open_reader(self, path: str) -> SftpReader:
        reader = SftpReader(self.pool, self.options, path, self._remote(path))
        await reader.open()
        return reader

    async def open_writer(self, path: str) -> SftpWriter:
        writer = SftpWriter(
            self.pool, self._renamer, self.partials, self.options, path, self._remote(path)
        )
        await writer.open()
        return writer

    async def mkdir(self, path: str) -> None:
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            try:
                await sftp.mkdir(remote)
            except asyncssh.SFTPFailure as exc:
                # SFTP v3 has no "exists" status; OpenSSH sends FX_FAILURE.
                if await sftp.exists(remote):
                    raise os_error(exc, path, errno.EEXIST) from None
                raise

        await self._run(path, op, idempotent=False)

    async def rmdir(self, path: str) -> None:
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            try:
                await sftp.rmdir(remote)
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure) as exc:
                await raise_if_not_dir(sftp, exc, remote, path)
                # SFTP v3 has no "not empty" status: OpenSSH sends FX_FAILURE.
                if isinstance(exc, asyncssh.SFTPFailure) and await has_entries(sftp, remote):
                    raise os_error(exc, path, errno.ENOTEMPTY) from None
                raise

        await self._run(path, op, idempotent=False)

    async def remove(self, path: str) -> None:
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            try:
                await sftp.remove(remote)
            except asyncssh.SFTPFailure as exc:
                if await sftp.isdir(remote):
                    raise os_error(exc, path, errno.EISDIR) from None
                raise

        await self._run(path, op, idempotent=False)

    async def rename(self, src: str, dst: str) -> None:
        old, new = self._remote(src), self._remote(dst)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            await self._renamer.replace(sftp, old, new, src, dst)

        await self._run(src, op, idempotent=False)

    async def set_mtime(self, path: str, mtime: float) -> None:
        if not self.options.set_modtime:
            return  # rclone's --sftp-set-modtime=false: the server's times stand
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            check_time("mtime", mtime)  # EOVERFLOW outside SFTP's 32-bit range
            await sftp.utime(remote, (mtime, mtime))

        await self._run(path, op, idempotent=True)

    # SupportsMetadata

    async def set_metadata(self, path: str, metadata: FileMetadata) -> None:
        remote = self._remote(path)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            await set_attributes(sftp, remote, metadata)

        await self._run(path, op, idempotent=True)

    # SupportsHardLinks

    async def hard_links_supported(self) -> bool:
        return self._hard_links

    async def hard_link(self, src: str, dst: str) -> None:
        old, new = self._remote(src), self._remote(dst)

        async def op(sftp: asyncssh.SFTPClient) -> None:
            try:
                await sftp.link(old, new)
            except asyncssh.SFTPOpUnsupported:
                self._hard_links = False
                raise OSError(errno.EPERM, "the SFTP server has no hardlink@openssh.com") from None
            except asyncssh.SFTPFailure as exc:
                if await sftp.exists(new):
                    raise os_error(exc, dst, errno.EEXIST) from None
                raise

        await self._run(src, op, idempotent=False)

    async def aclose(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and not sweeper.done():
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        await self.pool.aclose()
