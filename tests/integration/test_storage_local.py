"""LocalStorage specifics and the storage factory. The behaviour LocalStorage
shares with SftpStorage is checked in test_storage_sftp.py, on both."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.local import LocalStorage
from adapters.storage.sftp import SftpStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume import BackendSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_check_needs_an_existing_directory(tmp_path: Path) -> None:
    await LocalStorage(BackendSpec("local", str(tmp_path))).check()
    with pytest.raises(RemoteUnavailable, match=r'local root ".*/absent" does not exist'):
        await LocalStorage(BackendSpec("local", str(tmp_path / "absent"))).check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RemoteUnavailable, match="is not a directory"):
        await LocalStorage(BackendSpec("local", str(tmp_path / "file"))).check()


async def test_upload_goes_through_a_hidden_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(BackendSpec("local", str(tmp_path)))
    writer = await storage.open_writer("f")
    await writer.write(b"data")
    pending = names(tmp_path)
    assert len(pending) == 1 and pending[0].startswith(".f.") and pending[0].endswith(".partial")
    assert not (tmp_path / "f").exists()
    await writer.commit()
    assert names(tmp_path) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"data"


async def test_new_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        storage = LocalStorage(BackendSpec("local", str(tmp_path)))
        writer = await storage.open_writer("f")
        await writer.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


async def test_huge_read_size_returns_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    storage = LocalStorage(BackendSpec("local", str(tmp_path)))
    reader = await storage.open_reader("f")
    assert await reader.read(3, 1 << 40) == b"3456789"
    await reader.close()
    with pytest.raises(ValueError):
        await reader.read(0, 1)


def test_local_refuses_options_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="unsupported local option 'nounc'"):
        LocalStorage(BackendSpec("local", str(tmp_path), {"nounc": True}))
    with pytest.raises(OptionError):
        LocalStorage(BackendSpec("local", ""))


def test_factory_dispatches_on_type_without_connecting(tmp_path: Path) -> None:
    factory = DefaultStorageFactory()
    assert isinstance(factory.create(BackendSpec("local", str(tmp_path))), LocalStorage)
    # 192.0.2.1 (TEST-NET-1) is never reachable: create must not try.
    sftp = factory.create(BackendSpec("sftp", "/srv", {"host": "192.0.2.1"}))
    assert isinstance(sftp, SftpStorage)
    with pytest.raises(OptionError, match=r'unknown backend type "nfs" \(available: .*local, '):
        factory.create(BackendSpec("nfs", "/"))
    only = DefaultStorageFactory(
        {"local": LocalStorage, "sftp": SftpStorage}, fsspec_fallback=False
    )
    with pytest.raises(OptionError, match=r'unknown backend type "ftp" \(available: local, sftp\)'):
        only.create(BackendSpec("ftp", "/"))
    with pytest.raises(OptionError, match="'host' is required"):
        factory.create(BackendSpec("sftp", "/srv"))


def test_factory_accepts_new_types(tmp_path: Path) -> None:
    factory = DefaultStorageFactory()
    factory.register("alias", lambda spec: LocalStorage(BackendSpec("local", spec.root)))
    assert "alias" in factory.types
    assert isinstance(factory.create(BackendSpec("alias", str(tmp_path))), LocalStorage)
