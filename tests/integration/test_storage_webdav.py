"""The webdav remote against Debian's `rclone serve webdav` on loopback, through
the shared storage contract, with rclone's option names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.obscure import obscure
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.file_servers import FileServer, webdav_server
from tests.storage_contract import Backend, PathView, StorageContract, get, put

__all__ = ["webdav_server"]  # used by name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def webdav_storage(server: FileServer, **extra: str) -> RemoteStorage:
    options = {
        "type": "webdav",
        "webdav-url": server.url,
        "webdav-vendor": "rclone",
        "webdav-user": server.user,
        "webdav-pass": server.obscured_password,
        **extra,
    }
    spec = parse_volume_options(options).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


@pytest.fixture
async def backend(webdav_server: FileServer) -> AsyncIterator[Backend]:
    storage = webdav_storage(webdav_server)
    await storage.check()
    try:
        yield Backend(storage, PathView(webdav_server.data_dir))
    finally:
        await storage.aclose()


class TestWebdavStorage(StorageContract):
    async def test_list_dir_and_stat(self, backend: Backend) -> None:
        """As rclone's webdav backend with this server: sizes, kinds and times are
        listed; setting a time changes nothing on the server (WebDAV has no call
        for it that this server keeps), and keeps the data."""
        s = backend.storage
        await s.mkdir("d")
        await put(s, "a.txt", b"abc")
        await put(s, "d/b.txt", b"12345")
        listing = {e.name: e for e in await s.list_dir("")}
        assert sorted(listing) == ["a.txt", "d"]
        assert (listing["a.txt"].is_dir, listing["a.txt"].size) == (False, 3)
        assert listing["d"].is_dir
        assert [(e.name, e.size) for e in await s.list_dir("d")] == [("b.txt", 5)]
        entry = await s.stat("d/b.txt")
        assert (entry.name, entry.is_dir, entry.size) == ("b.txt", False, 5)
        assert abs(entry.mtime - backend.raw.mtime("d/b.txt")) < 2
        await s.set_mtime("d/b.txt", 1_000_000_000.0)
        assert await get(s, "d/b.txt") == b"12345"


async def test_wrong_password_is_refused_without_showing_it(webdav_server: FileServer) -> None:
    storage = webdav_storage(webdav_server, **{"webdav-pass": obscure("wrong-password")})
    with pytest.raises(RemoteUnavailable) as unavailable:
        await storage.check()
    assert "wrong-password" not in str(unavailable.value)
    assert "401" in str(unavailable.value) or "nauthori" in str(unavailable.value)
    await storage.aclose()


def test_a_password_not_obscured_is_refused_by_name(webdav_server: FileServer) -> None:
    with pytest.raises(OptionError, match="webdav option 'pass': value is not an obscured"):
        webdav_storage(webdav_server, **{"webdav-pass": "plain text"})
