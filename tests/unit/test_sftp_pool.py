"""SftpPool and its leases against fake SSH connections: sharing, channels,
idle close, forgetting lost connections, and the one retry after a loss."""

from __future__ import annotations

import itertools

import anyio
import asyncssh
import pytest

from adapters.storage.sftp_pool import MAX_CHANNELS, ConnectionLost, SftpPool
from domain.errors import RemoteUnavailable
from tests.timing import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeChannel:
    def __init__(self, number: int) -> None:
        self.number = number


class FakeConnection:
    def __init__(self, channels: itertools.count[int]) -> None:
        self._channels = channels
        self.closed = False

    async def start_sftp_client(self) -> FakeChannel:
        return FakeChannel(next(self._channels))

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

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
