"""SftpPool and its leases against fake SSH connections: sharing, channels,
idle close, forgetting lost connections, and the one retry after a loss; the
reader on them, reopening its file once after a loss."""

from __future__ import annotations

import asyncio
import errno
import itertools
from types import SimpleNamespace

import anyio
import asyncssh
import pytest

from adapters.storage import sftp_pool
from adapters.storage.sftp_options import SftpOptions
from adapters.storage.sftp_pool import MAX_CHANNELS, ConnectionLost, SftpPool
from adapters.storage.sftp_reader import SftpReader
from domain.errors import RemoteUnavailable
from tests.timing import eventually

pytestmark = pytest.mark.anyio
DATA = bytes(range(256)) * 64


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeFile:
    def __init__(self, channel: FakeChannel) -> None:
        self._channel = channel

    async def read(self, size: int, offset: int) -> bytes:
        if self._channel.connection.closed:
            raise asyncssh.SFTPConnectionLost("connection lost")
        return DATA[offset : offset + size]

    async def close(self) -> None:
        pass


class FakeChannel:
    limits = SimpleNamespace(max_read_len=32 * 1024, max_write_len=32 * 1024)

    def __init__(self, number: int, connection: FakeConnection) -> None:
        self.number, self.connection = number, connection

    async def stat(self, path: str) -> asyncssh.SFTPAttrs:
        if path != "/f":
            raise asyncssh.SFTPNoSuchFile("no such file")
        return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=len(DATA))

    async def open(self, path: str, mode: str, **options: object) -> FakeFile:
        if path != "/f":
            raise asyncssh.SFTPNoSuchFile("no such file")
        return FakeFile(self)


class FakeConnection:
    def __init__(self, channels: itertools.count[int]) -> None:
        self._channels = channels
        self.closed = False
        self.aborted = False

    async def start_sftp_client(self) -> FakeChannel:
        return FakeChannel(next(self._channels), self)

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    async def wait_closed(self) -> None:
        pass


class Server:
    """Hands out fake connections and counts them."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self._channels = itertools.count()

    async def connect(self) -> asyncssh.SSHClientConnection:
        conn = FakeConnection(self._channels)
        self.connections.append(conn)
        return conn  # type: ignore[return-value]  # duck-typed fake


def pool_on(server: Server, idle_timeout: float = 0.0) -> SftpPool:
    return SftpPool(
        server.connect, where="sftp fake:22", idle_timeout=idle_timeout, start_timeout=1
    )


async def test_leases_share_one_connection_and_spread_transfers() -> None:
    server = Server()
    pool = pool_on(server)
    async with pool.lease() as metadata, pool.lease() as again:
        assert metadata is again  # one metadata channel
    transfers = []
    for _ in range(2 * MAX_CHANNELS):
        async with pool.lease(transfer=True) as sftp:
            transfers.append(sftp)
    assert len(server.connections) == 1
    assert metadata not in transfers
    distinct = {id(t) for t in transfers}
    assert len(distinct) == MAX_CHANNELS - 1  # then round robin over them
    assert transfers[: MAX_CHANNELS - 1] == transfers[MAX_CHANNELS - 1 : 2 * MAX_CHANNELS - 2]
    await pool.aclose()


async def test_idle_connection_closes_only_once_every_lease_is_released() -> None:
    server = Server()
    pool = pool_on(server, idle_timeout=0.05)
    held = pool.lease(transfer=True)
    await held.channel()
    async with pool.lease():
        pass
    await anyio.sleep(0.2)  # four idle timeouts: the held lease keeps it
    assert pool.connection is server.connections[0]
    assert not server.connections[0].closed
    held.release()
    held.release()  # twice is harmless
    await eventually(lambda: pool.connection is None)
    assert server.connections[0].closed
    async with pool.lease():
        assert len(server.connections) == 2  # reopened on demand
    await pool.aclose()


async def test_a_lost_connection_is_forgotten_and_retried_once() -> None:
    server = Server()
    pool = pool_on(server)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        async with pool.lease():
            if attempts == 1:
                raise ConnectionResetError("reset by peer")
            return "done"

    assert await pool.retry_once(flaky, retry=True) == "done"
    assert attempts == 2
    assert len(server.connections) == 2 and server.connections[0].closed
    # Aborted: closing would wait for a server that may never read again.
    assert server.connections[0].aborted and not server.connections[1].closed


async def test_each_new_connection_is_announced() -> None:
    server = Server()
    pool = pool_on(server)
    announced: list[int] = []
    pool.on_connected = lambda: announced.append(len(server.connections))
    async with pool.lease(), pool.lease(transfer=True):
        pass
    assert announced == [1]  # one connection, however many channels

    async def lost() -> None:
        async with pool.lease():
            raise ConnectionResetError("reset by peer")

    with pytest.raises(RemoteUnavailable):
        await pool.retry_once(lost, retry=False)
    async with pool.lease():
        pass
    assert announced == [1, 2]
    await pool.aclose()
    assert not server.connections[1].aborted  # an orderly close of a live connection


async def test_no_retry_or_a_second_loss_is_remote_unavailable() -> None:
    server = Server()
    pool = pool_on(server)

    async def lost() -> None:
        async with pool.lease():
            raise asyncssh.SFTPConnectionLost("gone")

    with pytest.raises(RemoteUnavailable, match=r"sftp fake:22: connection lost: gone"):
        await pool.retry_once(lost, retry=False)
    assert len(server.connections) == 1
    with pytest.raises(RemoteUnavailable, match="connection lost"):
        await pool.retry_once(lost, retry=True)
    assert len(server.connections) == 3


async def test_refused_requests_pass_through_a_lease() -> None:
    pool = pool_on(Server())
    with pytest.raises(asyncssh.SFTPNoSuchFile):
        async with pool.lease():
            raise asyncssh.SFTPNoSuchFile("no such file")
    assert pool.connection is not None  # not a loss: the connection stays


async def test_a_late_loss_on_an_old_connection_spares_the_new_one() -> None:
    server = Server()
    pool = pool_on(server)
    old = pool.lease(transfer=True)
    await old.channel()
    async with pool.lease():
        pass
    server.connections[0].closed = True  # dropped under both
    async with pool.lease():
        pass
    assert pool.connection is server.connections[1]
    assert isinstance(old.lost(ConnectionResetError("late")), ConnectionLost)
    assert pool.connection is server.connections[1] and not server.connections[1].closed
    old.release()


async def test_a_closed_pool_opens_nothing() -> None:
    server = Server()
    pool = pool_on(server)
    async with pool.lease():
        pass
    await pool.aclose()
    assert pool.connection is None and server.connections[0].closed
    with pytest.raises(RemoteUnavailable, match="storage is closed"):
        async with pool.lease():
            pass


def reader_on(pool: SftpPool, remote: str = "/f") -> SftpReader:
    return SftpReader(pool, SftpOptions.parse({"host": "fake"}), "f", remote)


async def test_the_reader_reopens_its_file_once_after_a_loss() -> None:
    server = Server()
    pool = pool_on(server)
    reader = reader_on(pool)
    await reader.open()
    assert await reader.read(0, 4) == DATA[:4]
    server.connections[0].closed = True  # the connection dies under the open file
    assert await reader.read(100, 4) == DATA[100:104]
    assert len(server.connections) == 2
    await reader.close()
    with pytest.raises(ValueError, match="closed"):
        await reader.open()


async def test_the_reader_holds_the_connection_until_closed() -> None:
    server = Server()
    pool = pool_on(server, idle_timeout=0.05)
    reader = reader_on(pool)
    await reader.open()
    await anyio.sleep(0.2)  # four idle timeouts: the open reader keeps it
    assert not server.connections[0].closed
    await reader.close()
    await eventually(lambda: pool.connection is None)


async def test_a_missing_file_is_enoent_and_releases_the_lease() -> None:
    server = Server()
    pool = pool_on(server, idle_timeout=0.05)
    with pytest.raises(FileNotFoundError) as info:
        await reader_on(pool, "/missing").open()
    assert info.value.errno == errno.ENOENT and info.value.filename == "f"
    await eventually(lambda: pool.connection is None)


async def test_closing_a_frozen_connection_aborts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server()
    pool = pool_on(server)
    async with pool.lease():
        pass
    frozen = asyncio.Event()  # never set: the server never acknowledges the close

    async def never_closed() -> None:
        await frozen.wait()

    monkeypatch.setattr(server.connections[0], "wait_closed", never_closed)
    monkeypatch.setattr(sftp_pool, "_CLOSE_WAIT", 0.05)
    await pool.aclose()
    assert server.connections[0].aborted
