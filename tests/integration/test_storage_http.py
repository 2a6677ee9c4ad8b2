"""The http remote (read-only) against a static server on loopback, with
rclone's option names: listings, sizes and reads come from the server; every
write is refused with EROFS."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator

import pytest

from adapters.storage.factory import DefaultStorageFactory
from application.ports import RemoteStorage
from domain.errors import OptionError
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.file_servers import FileServer, http_server
from tests.storage_contract import get

__all__ = ["http_server"]  # used by name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def http_storage(server: FileServer, path: str = "") -> RemoteStorage:
    remote = f":http,url='{server.url}':{path}"
    spec = parse_volume_options({"remote": remote}).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


@pytest.fixture
async def storage(http_server: FileServer) -> AsyncIterator[RemoteStorage]:
    data = http_server.data_dir
    (data / "d" / "e").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"abc")
    (data / "d" / "big.bin").write_bytes(BIG)
    storage = http_storage(http_server)
    await storage.check()
    try:
        yield storage
    finally:
        await storage.aclose()


BIG = os.urandom(3 * 1024 * 1024 + 17)


async def test_listing_stat_and_ranged_reads(storage: RemoteStorage) -> None:
    assert [(e.name, e.is_dir) for e in await storage.list_dir("")] == [
        ("a.txt", False),
        ("d", True),
    ]
    assert sorted((e.name, e.is_dir) for e in await storage.list_dir("d")) == [
        ("big.bin", False),
        ("e", True),
    ]
    assert (await storage.stat("d/big.bin")).size == len(BIG)
    assert await get(storage, "a.txt") == b"abc"
    assert await get(storage, "d/big.bin", 1_000_000, 70_000) == BIG[1_000_000:1_070_000]
    with pytest.raises(FileNotFoundError):
        await storage.stat("nothing")


async def test_every_write_is_refused_with_erofs(storage: RemoteStorage) -> None:
    for attempt in (
        lambda: storage.open_writer("new"),
        lambda: storage.mkdir("newdir"),
        lambda: storage.remove("a.txt"),
        lambda: storage.rmdir("d/e"),
        lambda: storage.rename("a.txt", "b.txt"),
    ):
        with pytest.raises(OSError) as excinfo:
            await attempt()
        assert excinfo.value.errno == errno.EROFS


async def test_a_volume_below_the_url(http_server: FileServer) -> None:
    (http_server.data_dir / "sub").mkdir()
    (http_server.data_dir / "sub" / "x").write_bytes(b"below")
    storage = http_storage(http_server, "sub")
    await storage.check()
    try:
        assert await get(storage, "x") == b"below"
    finally:
        await storage.aclose()


def test_url_is_required_and_checked() -> None:
    with pytest.raises(OptionError, match="http-url is required"):
        parse_volume_options({"type": "http"})
    spec = parse_volume_options({"type": "http", "http-url": "ftp://x/"}).spec.backend
    with pytest.raises(OptionError, match="http option 'url' must be an http"):
        DefaultStorageFactory(fsspec_fallback=False).create(spec)
