"""The azureblob remote against Azurite (the Azure Blob Storage emulator) on
loopback, through the shared storage contract, with rclone's option names; the
container is the path's first segment, as in rclone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.storage.factory import DefaultStorageFactory
from application.ports import RemoteStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.azurite import ACCOUNT, KEY, Azurite, azurite
from tests.storage_contract import Backend, StorageContract, get, put

__all__ = ["azurite"]  # used by name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class ContainerView:
    """The container as the Azure SDK sees it (a RawView)."""

    container: Any  # azure.storage.blob.ContainerClient

    def read(self, path: str) -> bytes:
        data: bytes = self.container.download_blob(path).readall()
        return data

    def names(self, directory: str = "") -> list[str]:
        prefix = f"{directory}/" if directory else ""
        found = {
            item.name[len(prefix) :].rstrip("/").split("/")[0]
            for item in self.container.walk_blobs(name_starts_with=prefix)
        }
        return sorted(name for name in found if name)

    def exists(self, path: str) -> bool:
        if self.container.get_blob_client(path).exists():
            return True
        return any(True for _ in self.container.list_blobs(name_starts_with=f"{path}/"))

    def mtime(self, path: str) -> float:
        properties = self.container.get_blob_client(path).get_blob_properties()
        stamp = (properties.metadata or {}).get("mtime")
        if stamp:
            from datetime import datetime

            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        return float(properties.last_modified.timestamp())


def azure_storage(server: Azurite, path: str, **extra: str) -> RemoteStorage:
    options = {
        "type": "azureblob",
        "azureblob-account": ACCOUNT,
        "azureblob-key": KEY,
        "azureblob-endpoint": server.endpoint,
        "path": path,
        **extra,
    }
    spec = parse_volume_options(options).spec.backend
    return DefaultStorageFactory(fsspec_fallback=False).create(spec)


@pytest.fixture
def container(azurite: Azurite) -> Iterator[Any]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = f"c{uuid.uuid4().hex[:12]}"
    yield service.create_container(name)


@pytest.fixture
async def backend(azurite: Azurite, container: Any) -> AsyncIterator[Backend]:
    storage = azure_storage(azurite, container.container_name)
    await storage.check()
    try:
        yield Backend(storage, ContainerView(container))
    finally:
        await storage.aclose()


class TestAzureBlobStorage(StorageContract):
    """The shared behaviour, but for directories: as with rclone's azureblob, a
    directory is the prefix of its blobs, so an empty one is listed while the
    storage lives and is not on the service."""

    async def test_empty_directory_is_listed(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("empty")
        await s.mkdir("empty/inner")
        assert [(e.name, e.is_dir) for e in await s.list_dir("")] == [("empty", True)]
        assert [(e.name, e.is_dir) for e in await s.list_dir("empty")] == [("inner", True)]
        assert (await s.stat("empty/inner")).is_dir
        assert not backend.raw.exists("empty")

    async def test_directory_stays_when_its_last_file_goes(self, backend: Backend) -> None:
        s = backend.storage
        await s.mkdir("d")
        await put(s, "d/f", b"x")
        assert backend.raw.exists("d")
        await s.rename("d/f", "moved")
        assert await get(s, "moved") == b"x"
        assert backend.raw.names() == ["moved"]


async def test_wrong_key_is_refused_without_showing_it(azurite: Azurite, container: Any) -> None:
    wrong = "d3JvbmcgYnV0IHdlbGwgZm9ybWVkIGtleQ=="
    storage = azure_storage(azurite, container.container_name, **{"azureblob-key": wrong})
    with pytest.raises(RemoteUnavailable) as unavailable:
        await storage.check()
    assert wrong not in str(unavailable.value)
    await storage.aclose()


async def test_a_volume_below_a_prefix(azurite: Azurite, container: Any) -> None:
    storage = azure_storage(azurite, f"{container.container_name}/some/prefix")
    await storage.check()
    try:
        await put(storage, "f", b"deep")
        assert await get(storage, "f") == b"deep"
    finally:
        await storage.aclose()
    assert ContainerView(container).read("some/prefix/f") == b"deep"


def test_the_container_is_required(azurite: Azurite) -> None:
    with pytest.raises(OptionError, match="the azureblob backend needs a container"):
        azure_storage(azurite, "")
