"""RemoteStorage behaviour, checked alike on LocalStorage and on SftpStorage
against a real sshd (the shared checks are tests/storage_contract.py, which the
fsspec storages run too); then symlinks, which only these two have, and the
SFTP-only matters (connecting, auth, host keys, connection reuse). Local-only
checks are in test_storage_local.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import pytest

from adapters.storage.local import LocalStorage
from adapters.storage.obscure import obscure
from adapters.storage.sftp import SftpStorage
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume import BackendSpec
from tests.integration.fixtures import sshd as sshd_fixtures
from tests.storage_contract import (
    Backend,
    HardLinkContract,
    MetadataContract,
    PathView,
    StorageContract,
    get,
    put,
)
from tests.timing import eventually

sshd = sshd_fixtures.sshd
SshdServer = sshd_fixtures.SshdServer

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncssh is an asyncio library


def sftp_spec(server: SshdServer, root: str | None = None, **options: Any) -> BackendSpec:
    base: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_file": str(server.key_file),
        "known_hosts_file": str(server.known_hosts_file),
    }
    base.update(options)
    return BackendSpec("sftp", str(server.data_dir) if root is None else root, base)


@pytest.fixture(params=["local", "sftp"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    storage: RemoteStorage
    if request.param == "sftp":
        server: SshdServer = request.getfixturevalue("sshd")
        storage = SftpStorage(sftp_spec(server))
        root = server.data_dir
    else:
        root = tmp_path / "root"
        root.mkdir()
        storage = LocalStorage(BackendSpec("local", str(root)))
    await storage.check()
    try:
        yield Backend(storage, PathView(root))
    finally:
        await storage.aclose()


class TestLocalAndSftpStorage(StorageContract, MetadataContract, HardLinkContract):
    """The shared behaviour (tests/storage_contract.py) on both."""


async def test_symlinks_are_followed_and_dangling_ones_skipped(backend: Backend) -> None:
    s = backend.storage
    assert isinstance(backend.raw, PathView)
    root = backend.raw.root
    await s.mkdir("d")
    await put(s, "a.txt", b"abc")
    await put(s, "d/b.txt", b"12345")
    os.symlink("a.txt", root / "link")
    os.symlink("missing", root / "dangling")
    os.symlink("d", root / "dirlink")

    listing = {e.name: e for e in await s.list_dir("")}
    assert sorted(listing) == ["a.txt", "d", "dirlink", "link"]  # dangling link skipped
    assert (listing["link"].is_dir, listing["link"].size) == (False, 3)  # followed
    assert listing["dirlink"].is_dir
    assert await s.list_dir("dirlink") == await s.list_dir("d")


# --- SFTP only -------------------------------------------------------------------


def write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def login_dir() -> Path:
    return Path(os.path.expanduser("~root"))  # root's login directory


def login_dir_names() -> list[str]:
    return os.listdir(login_dir())


def read_login_file(name: str) -> bytes:
    return (login_dir() / name).read_bytes()


def remove_login_file(name: str) -> None:
    (login_dir() / name).unlink(missing_ok=True)


def accepted_logins(server: SshdServer) -> int:
    return server.log().count("Accepted publickey")


async def test_connection_refused_is_quick(sshd: SshdServer) -> None:
    with anyio.fail_after(5):
        spec = sftp_spec(sshd, port=_closed_port(), **{"pass": obscure("hunter2")})
        storage = SftpStorage(spec)
        with pytest.raises(
            RemoteUnavailable, match=r"sftp 127\.0\.0\.1:\d+: connection refused"
        ) as e:
            await storage.check()
    assert "hunter2" not in str(e.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_wrong_key_is_an_authentication_failure(sshd: SshdServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    storage = SftpStorage(sftp_spec(sshd, key_file=str(other)))
    with pytest.raises(RemoteUnavailable, match="authentication failed for user root"):
        await storage.check()


async def test_missing_key_file(sshd: SshdServer, tmp_path: Path) -> None:
    storage = SftpStorage(sftp_spec(sshd, key_file=str(tmp_path / "absent")))
    with pytest.raises(RemoteUnavailable, match="absent: no such file"):
        await storage.check()


async def test_known_hosts_mismatch_is_refused(sshd: SshdServer, tmp_path: Path) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {impostor}")
    storage = SftpStorage(sftp_spec(sshd, known_hosts_file=str(known)))
    with pytest.raises(RemoteUnavailable, match="host key"):
        await storage.check()
    assert accepted_logins(sshd) == 0


async def test_known_hosts_match_and_unchecked_are_accepted(sshd: SshdServer) -> None:
    for known_hosts in (str(sshd.known_hosts_file), ""):
        storage = SftpStorage(sftp_spec(sshd, known_hosts_file=known_hosts))
        await storage.check()
        await storage.aclose()
    assert accepted_logins(sshd) == 2


async def test_check_creates_missing_root_and_refuses_a_file(sshd: SshdServer) -> None:
    root = sshd.data_dir / "a" / "b"
    storage = SftpStorage(sftp_spec(sshd, root=str(root)))
    await storage.check()
    assert root.is_dir()
    (sshd.data_dir / "plain").write_text("x")
    bad = SftpStorage(sftp_spec(sshd, root=f"{sshd.data_dir}/plain"))
    with pytest.raises(RemoteUnavailable, match="is not a directory"):
        await bad.check()
    await storage.aclose()
    await bad.aclose()


async def test_one_connection_is_shared(sshd: SshdServer) -> None:
    storage = SftpStorage(sftp_spec(sshd))
    write_file(sshd.data_dir / "f", b"data")
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(storage.stat, "f")
                tg.start_soon(get, storage, "f")
                tg.start_soon(storage.list_dir, "")
        assert accepted_logins(sshd) == 1
    finally:
        await storage.aclose()


async def test_reconnects_after_idle_close_and_after_a_drop(sshd: SshdServer) -> None:
    storage = SftpStorage(sftp_spec(sshd, idle_timeout=0.2))
    write_file(sshd.data_dir / "f", b"data")
    try:
        await storage.stat("f")
        await eventually(lambda: storage.pool.connection is None)  # closed for being idle
        assert (await storage.stat("f")).size == 4
        assert accepted_logins(sshd) == 2

        # An open reader keeps the connection: no idle close under it...
        reader = await storage.open_reader("f")
        await anyio.sleep(0.6)  # three idle timeouts
        assert await reader.read(0, 4) == b"data"
        assert accepted_logins(sshd) == 2

        # The connection dies under the reader: it reopens the file and goes on.
        conn = storage.pool.connection
        assert conn is not None
        conn.abort()
        await eventually(conn.is_closed)
        assert await reader.read(1, 2) == b"at"
        await reader.close()
        assert accepted_logins(sshd) == 3
        # ...and once the reader is closed, the idle close does come.
        await eventually(lambda: storage.pool.connection is None)
    finally:
        await storage.aclose()


@pytest.mark.parametrize(
    ("chunk_size", "expected"),
    [(None, "server limit"), (64 * 1024, 64 * 1024), (4 * MiB, "server limit")],
)
async def test_request_size_is_the_servers_limit_unless_chunk_size_is_given(
    sshd: SshdServer, monkeypatch: pytest.MonkeyPatch, chunk_size: int | None, expected: object
) -> None:
    """Reads and writes go out in requests of `chunk_size`, never above the limit
    the server advertises, and of that limit when `chunk_size` is not given."""
    sent: list[tuple[str, int]] = []
    handler = asyncssh.sftp.SFTPClientHandler
    real_read, real_write = handler.read, handler.write

    async def read(self: Any, handle: bytes, offset: int, length: int) -> Any:
        sent.append(("read", length))
        return await real_read(self, handle, offset, length)

    async def write(self: Any, handle: bytes, offset: int, data: bytes) -> Any:
        sent.append(("write", len(data)))
        return await real_write(self, handle, offset, data)

    monkeypatch.setattr(handler, "read", read)
    monkeypatch.setattr(handler, "write", write)
    options = {} if chunk_size is None else {"chunk_size": chunk_size}
    storage = SftpStorage(sftp_spec(sshd, **options))
    data = os.urandom(3 * MiB)
    try:
        await put(storage, "big", data)
        assert await get(storage, "big") == data
        async with storage.pool.lease() as sftp:
            limits = sftp.limits
    finally:
        await storage.aclose()
    want = {
        "read": limits.max_read_len if expected == "server limit" else expected,
        "write": limits.max_write_len if expected == "server limit" else expected,
    }
    assert limits.max_read_len > 64 * 1024  # OpenSSH advertises 255 KiB
    for kind in ("read", "write"):
        sizes = [n for k, n in sent if k == kind]
        assert max(sizes) == want[kind], (kind, sorted(set(sizes)))


async def test_empty_root_is_the_login_directory(sshd: SshdServer) -> None:
    storage = SftpStorage(sftp_spec(sshd, root=""))
    marker = f"cloudvol-login-dir-{uuid.uuid4().hex[:8]}"
    try:
        assert (await storage.stat("")).is_dir
        await put(storage, marker, b"here")
        assert read_login_file(marker) == b"here"
        names = {e.name for e in await storage.list_dir("")}
        assert marker in names
        assert names == set(login_dir_names())
    finally:
        remove_login_file(marker)
        await storage.aclose()


def test_options_are_checked_without_connecting() -> None:
    ok = SftpStorage(BackendSpec("sftp", "/srv", {"host": "192.0.2.1", "pass": obscure("pw")}))
    assert ok.options.password == "pw"
    assert "pw" not in repr(ok.options)
    assert ok.options.port == 22 and ok.options.concurrency == 64 and ok.options.set_modtime
    with pytest.raises(OptionError, match="not an obscured password"):
        SftpStorage(BackendSpec("sftp", "/srv", {"host": "h", "pass": "plain!"}))
    with pytest.raises(OptionError, match="'host' is required"):
        SftpStorage(BackendSpec("sftp", "/srv", {}))
    with pytest.raises(OptionError, match="unsupported sftp option 'bogus'"):
        SftpStorage(BackendSpec("sftp", "/srv", {"host": "h", "bogus": 1}))
    with pytest.raises(OptionError, match="'port' must be of type int"):
        SftpStorage(BackendSpec("sftp", "/srv", {"host": "h", "port": "22"}))


async def test_set_modtime_false_leaves_server_times(sshd: SshdServer) -> None:
    storage = SftpStorage(sftp_spec(sshd, set_modtime=False))
    try:
        await put(storage, "f", b"x")
        before = (await storage.stat("f")).mtime
        await storage.set_mtime("f", 1_000_000_000.0)
        assert (await storage.stat("f")).mtime == before
    finally:
        await storage.aclose()
