"""The ftp remote against pyftpdlib on loopback, through the shared storage
contract, with rclone's option names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.obscure import obscure
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.file_servers import FileServer, ftp_server
from tests.storage_contract import Backend, PathView, StorageContract

__all__ = ["ftp_server"]  # used by name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def ftp_storage(server: FileServer, **extra: str) -> RemoteStorage:
    options = {
        "type": "ftp",
        "ftp-host": server.host,
        "ftp-port": str(server.port),
        "ftp-user": server.user,
        "ftp-pass": server.obscured_password,
        **extra,
    }
    spec = parse_volume_options(options).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


@pytest.fixture
async def backend(ftp_server: FileServer) -> AsyncIterator[Backend]:
    storage = ftp_storage(ftp_server)
    await storage.check()
    try:
        yield Backend(storage, PathView(ftp_server.data_dir))
    finally:
        await storage.aclose()


class TestFtpStorage(StorageContract):
    """The shared behaviour; times are kept (MLSD to read, MFMT to set)."""


async def test_wrong_password_is_refused_without_showing_it(ftp_server: FileServer) -> None:
    storage = ftp_storage(ftp_server, **{"ftp-pass": obscure("wrong-password")})
    with pytest.raises(RemoteUnavailable) as unavailable:
        await storage.check()
    assert "wrong-password" not in str(unavailable.value)
    await storage.aclose()


def test_implicit_tls_is_refused_by_name(ftp_server: FileServer) -> None:
    with pytest.raises(OptionError, match="ftp-tls: not supported yet"):
        ftp_storage(ftp_server, **{"ftp-tls": "true"})
