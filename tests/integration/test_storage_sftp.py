"""RemoteStorage behaviour, checked alike on LocalStorage and on SftpStorage
against a real sshd; then the SFTP-only matters (connecting, auth, host keys,
connection reuse). Local-only checks are in test_storage_local.py."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass
class Backend:
    storage: RemoteStorage
    root: Path  # the same directory seen through the local filesystem


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
        yield Backend(storage, root)
    finally:
        await storage.aclose()


async def put(storage: RemoteStorage, path: str, data: bytes) -> None:
    writer = await storage.open_writer(path)
    await writer.write(data)
    await writer.commit()


async def get(storage: RemoteStorage, path: str, offset: int = 0, size: int = 1 << 40) -> bytes:
    reader = await storage.open_reader(path)
    try:
        return await reader.read(offset, size)
    finally:
        await reader.close()


# --- shared behaviour ------------------------------------------------------------


async def test_large_write_then_ranged_reads(backend: Backend) -> None:
    s = backend.storage
    data = os.urandom(5 * MiB)
    writer = await s.open_writer("big.bin")
    # Uneven pieces: offsets must come out right whatever the chunking.
    for start in range(0, len(data), 700_001):
        await writer.write(data[start : start + 700_001])
    await writer.commit()

    assert (backend.root / "big.bin").read_bytes() == data
    assert (await s.stat("big.bin")).size == len(data)

    reader = await s.open_reader("big.bin")
    try:
        for offset, size in [(0, 10), (123_457, 1_000_000), (4 * MiB + 3, 2 * MiB), (0, 5 * MiB)]:
            assert await reader.read(offset, size) == data[offset : offset + size]
        assert await reader.read(len(data) - 10, 100) == data[-10:]
        assert await reader.read(len(data), 10) == b""
        assert await reader.read(len(data) + 12345, 10) == b""
    finally:
        await reader.close()


async def test_upload_is_atomic_and_abort_keeps_old_content(backend: Backend) -> None:
    s = backend.storage
    await put(s, "f.txt", b"old content")

    writer = await s.open_writer("f.txt")
    await writer.write(b"new")
    assert await get(s, "f.txt") == b"old content"  # not replaced before commit
    await writer.abort()
    assert await get(s, "f.txt") == b"old content"
    assert sorted(p.name for p in backend.root.iterdir()) == ["f.txt"]

    writer = await s.open_writer("f.txt")
    await writer.write(b"new ")
    await writer.write(b"content")
    await writer.commit()
    assert await get(s, "f.txt") == b"new content"
    assert sorted(p.name for p in backend.root.iterdir()) == ["f.txt"]


async def test_empty_file(backend: Backend) -> None:
    s = backend.storage
    writer = await s.open_writer("empty")
    await writer.commit()
    entry = await s.stat("empty")
    assert (entry.is_dir, entry.size) == (False, 0)
    assert await get(s, "empty") == b""


async def test_list_dir_and_stat(backend: Backend) -> None:
    s = backend.storage
    await s.mkdir("d")
    await put(s, "a.txt", b"abc")
    await put(s, "d/b.txt", b"12345")
    os.symlink("a.txt", backend.root / "link")
    os.symlink("missing", backend.root / "dangling")
    os.symlink("d", backend.root / "dirlink")

    listing = {e.name: e for e in await s.list_dir("")}
    assert sorted(listing) == ["a.txt", "d", "dirlink", "link"]  # dangling link skipped
    assert (listing["a.txt"].is_dir, listing["a.txt"].size) == (False, 3)
    assert listing["d"].is_dir
    assert (listing["link"].is_dir, listing["link"].size) == (False, 3)  # followed
    assert listing["dirlink"].is_dir
    assert [(e.name, e.size) for e in await s.list_dir("d")] == [("b.txt", 5)]
    assert await s.list_dir("dirlink") == await s.list_dir("d")

    root = await s.stat("")
    assert root.is_dir
    entry = await s.stat("d/b.txt")
    assert (entry.name, entry.is_dir, entry.size) == ("b.txt", False, 5)
    assert abs(entry.mtime - time.time()) < 60

    await s.set_mtime("d/b.txt", 1_000_000_000.0)
    assert (await s.stat("d/b.txt")).mtime == pytest.approx(1_000_000_000.0, abs=1)
    assert (backend.root / "d" / "b.txt").stat().st_mtime == pytest.approx(1e9, abs=1)


async def test_mkdir_and_rmdir(backend: Backend) -> None:
    s = backend.storage
    await s.mkdir("d")
    with pytest.raises(FileExistsError):
        await s.mkdir("d")
    with pytest.raises(FileNotFoundError):
        await s.mkdir("nope/sub")
    await put(s, "d/f", b"x")
    with pytest.raises(OSError) as excinfo:
        await s.rmdir("d")
    assert excinfo.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        await s.rmdir("d/f")
    with pytest.raises(FileNotFoundError):
        await s.rmdir("missing")
    await s.remove("d/f")
    await s.rmdir("d")
    assert not (backend.root / "d").exists()
    with pytest.raises(FileNotFoundError):
        await s.stat("d")


async def test_remove(backend: Backend) -> None:
    s = backend.storage
    await put(s, "f", b"x")
    await s.mkdir("d")
    await s.remove("f")
    assert not (backend.root / "f").exists()
    with pytest.raises(FileNotFoundError):
        await s.remove("f")
    with pytest.raises(IsADirectoryError):
        await s.remove("d")


async def test_rename(backend: Backend) -> None:
    s = backend.storage
    await put(s, "a", b"from a")
    await put(s, "b", b"from b")
    await s.rename("a", "b")  # replaces the existing file
    assert await get(s, "b") == b"from a"
    with pytest.raises(FileNotFoundError):
        await s.stat("a")
    with pytest.raises(FileNotFoundError):
        await s.rename("a", "c")

    await s.mkdir("d")
    await put(s, "d/inner", b"i")
    await s.rename("d", "e")
    assert await get(s, "e/inner") == b"i"
    assert not (backend.root / "d").exists()

    await s.mkdir("full")
    await put(s, "full/x", b"x")
    await s.mkdir("src")
    with pytest.raises(OSError) as excinfo:
        await s.rename("src", "full")
    assert excinfo.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    with pytest.raises(IsADirectoryError):
        await s.rename("b", "full")


async def test_missing_and_wrong_kinds(backend: Backend) -> None:
    s = backend.storage
    await put(s, "f", b"x")
    await s.mkdir("d")
    with pytest.raises(FileNotFoundError):
        await s.stat("nothing")
    with pytest.raises(FileNotFoundError):
        await s.list_dir("nothing")
    with pytest.raises(FileNotFoundError):
        await s.open_reader("nothing")
    with pytest.raises(FileNotFoundError):
        await s.open_writer("nothing/f")
    with pytest.raises(NotADirectoryError):
        await s.list_dir("f")
    with pytest.raises(IsADirectoryError):
        await s.open_reader("d")
    with pytest.raises(IsADirectoryError):
        await s.open_writer("d")


async def test_refuses_paths_leaving_the_root(backend: Backend) -> None:
    for bad in ("../etc/passwd", "d/../../x", "/etc/passwd"):
        with pytest.raises(PermissionError):
            await backend.storage.stat(bad)


async def test_concurrent_readers_and_writers(backend: Backend) -> None:
    s = backend.storage
    blobs = {f"f{i}": os.urandom(300_000 + i) for i in range(8)}
    async with anyio.create_task_group() as tg:
        for name, data in blobs.items():
            tg.start_soon(put, s, name, data)
    results: dict[str, bytes] = {}

    async def fetch(name: str) -> None:
        results[name] = await get(s, name)

    async with anyio.create_task_group() as tg:
        for name in blobs:
            tg.start_soon(fetch, name)
    assert results == blobs


# --- SFTP only -------------------------------------------------------------------


def write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def login_dir_names() -> list[str]:
    return os.listdir(os.path.expanduser("~root"))  # root's login directory


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
        await anyio.sleep(0.6)
        assert storage._conn is None  # closed for being idle
        assert (await storage.stat("f")).size == 4
        assert accepted_logins(sshd) == 2

        # An open reader keeps the connection: no idle close under it.
        reader = await storage.open_reader("f")
        await anyio.sleep(0.6)
        assert await reader.read(0, 4) == b"data"
        assert accepted_logins(sshd) == 2

        # The connection dies under the reader: it reopens the file and goes on.
        assert storage._conn is not None
        storage._conn.abort()
        await anyio.sleep(0.1)
        assert await reader.read(1, 2) == b"at"
        await reader.close()
        assert accepted_logins(sshd) == 3
    finally:
        await storage.aclose()


async def test_empty_root_is_the_login_directory(sshd: SshdServer) -> None:
    storage = SftpStorage(sftp_spec(sshd, root=""))
    try:
        assert (await storage.stat("")).is_dir
        names = {e.name for e in await storage.list_dir("")}
        assert names <= set(login_dir_names())
    finally:
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
