"""The SSH connection an SFTP storage shares, and the leases that use it.

One connection, opened on first use, carries a few SFTP channels: the first for
metadata requests, the others for file transfers, handed out in turn so one busy
transfer does not hold up directory listings. While any lease is held the
connection stays; once the last is released it is closed after `idle_timeout`
(0: kept), and reopened transparently by the next lease.

A lease turns a lost connection (an SFTP "connection lost" status, an SSH or
socket error) into `ConnectionLost` after forgetting that connection, so the
next lease opens a new one; `retry_once` runs an operation again after one loss.
A connection dropped for a loss is aborted, not closed: closing waits for the
server to take what is still buffered, which a frozen server never does.
`on_connected` is called after each new connection (the storage then removes the
temporary files that interrupted uploads left).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import asyncssh
from loguru import logger

from adapters.storage.sftp_errors import is_lost, lost_reason
from domain.errors import RemoteUnavailable

T = TypeVar("T")

MAX_CHANNELS = 4  # SFTP channels per connection, the first one for metadata
_CLOSE_WAIT = 5.0  # seconds an orderly close may take before the connection is aborted

Connector = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


class ConnectionLost(Exception):
    """The connection under a lease went away; the pool has forgotten it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SftpPool:
    """The shared connection and its channels; see the module docstring."""

    def __init__(
        self,
        connect: Connector,
        *,
        where: str,
        idle_timeout: float,
        start_timeout: float | None,
    ) -> None:
        self._connect = connect
        self.where = where  # how messages name the server
        self._idle_timeout = idle_timeout
        self._start_timeout = start_timeout
        self._lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._channels: list[asyncssh.SFTPClient] = []
        self._next_channel = 0
        self._users = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.on_connected: Callable[[], None] | None = None

    @property
    def connection(self) -> asyncssh.SSHClientConnection | None:
        """The open connection; None until the next lease opens one."""
        return self._conn

    def lease(self, *, transfer: bool = False) -> Lease:
        """A hold on the connection, with a metadata or a transfer channel:
        `async with pool.lease() as sftp:`, or kept by a reader or writer."""
        return Lease(self, transfer=transfer)

    def unavailable(self, lost: ConnectionLost) -> RemoteUnavailable:
        return RemoteUnavailable(f"{self.where}: connection lost: {lost.reason}")

    async def retry_once(self, attempt: Callable[[], Awaitable[T]], *, retry: bool) -> T:
        """`attempt()`, run once more on a new connection if it lost its own and
        `retry` (repeating it is harmless); a loss it does not retry, or a second
        one, is `RemoteUnavailable`."""
        try:
            return await attempt()
        except ConnectionLost as lost:
            if not retry:
                raise self.unavailable(lost) from None
            logger.debug("{}: connection lost ({}), reconnecting", self.where, lost.reason)
        try:
            return await attempt()
        except ConnectionLost as lost:
            raise self.unavailable(lost) from None

    async def aclose(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        conn = self._conn
        self._drop()
        if conn is not None:
            try:
                # An orderly close waits for the server, which may be frozen.
                async with asyncio.timeout(_CLOSE_WAIT):
                    await conn.wait_closed()
            except TimeoutError:
                conn.abort()

    # for leases

    async def _channel(
        self, *, transfer: bool
    ) -> tuple[asyncssh.SFTPClient, asyncssh.SSHClientConnection | None]:
        """A channel and the connection it belongs to."""
        metadata = await self._metadata_channel()
        if not transfer:
            return metadata, self._conn
        async with self._lock:
            conn = self._conn
            if conn is not None and len(self._channels) < MAX_CHANNELS:
                try:
                    self._channels.append(await conn.start_sftp_client())
                except (asyncssh.Error, OSError) as exc:
                    raise RemoteUnavailable(f"{self.where}: cannot start SFTP: {exc}") from None
                return self._channels[-1], conn
            # Round robin over the transfer channels (all but the metadata one).
            self._next_channel = self._next_channel % (len(self._channels) - 1) + 1
            return self._channels[self._next_channel], conn

    def _hold(self) -> None:
        self._users += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._idle_timeout > 0 and not self._closed:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self._idle_timeout, self._close_if_idle)

    def _forget(self, conn: asyncssh.SSHClientConnection | None) -> None:
        """Drop `conn` after it failed, unless it was already replaced: a late
        failure on an old connection must not close the new one."""
        if conn is not None and conn is self._conn:
            self._drop(lost=True)

    # the connection

    def _alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed() and bool(self._channels)

    async def _metadata_channel(self) -> asyncssh.SFTPClient:
        if self._alive():
            return self._channels[0]
        async with self._lock:
            if not self._alive():
                if self._closed:
                    raise RemoteUnavailable(f"{self.where}: storage is closed")
                self._drop()
                conn = await self._connect()
                try:
                    async with asyncio.timeout(self._start_timeout):
                        sftp = await conn.start_sftp_client()
                except (asyncssh.Error, OSError, TimeoutError) as exc:
                    conn.abort()
                    raise RemoteUnavailable(f"{self.where}: cannot start SFTP: {exc}") from None
                self._conn, self._channels = conn, [sftp]
                if self.on_connected is not None:
                    self.on_connected()
            return self._channels[0]

    def _drop(self, *, lost: bool = False) -> None:
        if self._conn is not None:
            if lost or self._conn.is_closed():
                self._conn.abort()
            else:
                self._conn.close()
        self._conn, self._channels = None, []

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._users == 0 and self._conn is not None:
            logger.debug("{}: closing idle connection", self.where)
            self._drop()


class Lease:
    """Keeps the pool's connection from closing for being idle until released,
    and hands out channels on it. Short uses are `async with pool.lease() as sftp:`;
    a reader or writer holds one for its lifetime and calls `channel()` and
    `lost()` itself."""

    def __init__(self, pool: SftpPool, *, transfer: bool) -> None:
        self._pool, self._transfer = pool, transfer
        self._held = False
        self._conn: asyncssh.SSHClientConnection | None = None

    async def channel(self) -> asyncssh.SFTPClient:
        """A channel (a new one after a loss); the first call takes the hold."""
        if not self._held:
            self._pool._hold()
            self._held = True
        sftp, self._conn = await self._pool._channel(transfer=self._transfer)
        return sftp

    def lost(self, exc: BaseException) -> ConnectionLost:
        """`exc`, which `is_lost`, as ConnectionLost; the pool forgets the connection."""
        self._pool._forget(self._conn)
        return ConnectionLost(lost_reason(exc))

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool._release()

    async def __aenter__(self) -> asyncssh.SFTPClient:
        try:
            return await self.channel()
        except BaseException:
            self.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        if exc is not None and not isinstance(exc, ConnectionLost) and is_lost(exc):
            raise self.lost(exc) from None
