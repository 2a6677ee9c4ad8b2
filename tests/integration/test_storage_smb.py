"""The smb remote against Samba's smbd on a high loopback port, through the
shared storage contract, with rclone's option names (the share is the path's
first segment)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.obscure import obscure
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.file_servers import FileServer, smb_server
from tests.storage_contract import Backend, PathView, StorageContract

__all__ = ["smb_server"]  # used by name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def smb_storage(server: FileServer, path: str = "share", **extra: str) -> RemoteStorage:
    options = {
        "type": "smb",
        "smb-host": server.host,
        "smb-port": str(server.port),
        "smb-user": server.user,
        "smb-pass": server.obscured_password,
        "path": path,
        **extra,
    }
    spec = parse_volume_options(options).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


@pytest.fixture
async def backend(smb_server: FileServer) -> AsyncIterator[Backend]:
    storage = smb_storage(smb_server)
    await storage.check()
    try:
        yield Backend(storage, PathView(smb_server.data_dir))
    finally:
        await storage.aclose()


class TestSmbStorage(StorageContract):
    """The shared behaviour."""


async def test_wrong_password_is_refused_without_showing_it(smb_server: FileServer) -> None:
    storage = smb_storage(smb_server, **{"smb-pass": obscure("wrong-password")})
    with pytest.raises(RemoteUnavailable) as unavailable:
        await storage.check()
    assert "wrong-password" not in str(unavailable.value)
    await storage.aclose()


def test_the_share_is_required(smb_server: FileServer) -> None:
    with pytest.raises(OptionError, match="the smb backend needs a share"):
        smb_storage(smb_server, path="")
