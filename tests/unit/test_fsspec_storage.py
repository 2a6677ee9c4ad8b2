"""FsspecStorage on fsspec's memory filesystem (the shared storage contract), the
generic behaviours other filesystems need (stores without directories, ranges
ignored, read-only, options typed by signature), the factory, and the S3 option
and error mapping (no server: tests/integration/test_storage_s3.py has one)."""

from __future__ import annotations

import errno
import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fsspec import AbstractFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.fsspec_protocols import fsspec_options, fsspec_protocols
from adapters.storage.fsspec_remotes import WebdavStorage
from adapters.storage.fsspec_storage import FsspecStorage, build_fsspec_storage
from adapters.storage.local import LocalStorage
from adapters.storage.s3 import S3Storage
from adapters.storage.s3_client import s3fs_arguments
from adapters.storage.s3_options import S3Options
from adapters.storage.sftp import SftpStorage
from domain.errors import OptionError, RemoteUnavailable
from domain.volume import BackendSpec, Timeouts
from domain.volume_options import parse_volume_options
from tests.storage_contract import Backend, StorageContract, get, put

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class MemoryView:
    fs: MemoryFileSystem
    root: str

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def read(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(self._full(path)))

    def names(self, directory: str = "") -> list[str]:
        return sorted(
            e.rstrip("/").rsplit("/", 1)[-1]
            for e in self.fs.ls(self._full(directory), detail=False)
        )

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._full(path)))

    def mtime(self, path: str) -> float:
        return float(self.fs.modified(self._full(path)).timestamp())


def memory_storage(root: str = "/vol") -> FsspecStorage:
    # A private store per test: the memory filesystem's default store is global.
    storage = build_fsspec_storage(BackendSpec("memory", root, {"global_store": "false"}))
    return storage


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    storage = memory_storage()
    await storage.check()
    try:
        yield Backend(storage, MemoryView(storage.filesystem(), "/vol"))
    finally:
        await storage.aclose()


class TestMemoryStorage(StorageContract):
    """The shared behaviour (tests/storage_contract.py) on fsspec's memory filesystem."""


async def test_check_makes_a_missing_root_and_refuses_a_file() -> None:
    storage = memory_storage("/a/b")
    await storage.check()
    fs = storage.filesystem()
    assert fs.isdir("/a/b")
    fs.pipe_file("/plain", b"x")
    other = FsspecStorage(lambda: fs, "/plain", label="memory /plain")
    with pytest.raises(RemoteUnavailable, match="is not a directory"):
        await other.check()


async def test_each_storage_builds_its_own_filesystem_lazily() -> None:
    built: list[int] = []

    def make() -> MemoryFileSystem:
        built.append(1)
        return MemoryFileSystem(global_store=False, skip_instance_cache=True)

    storage = FsspecStorage(make, "/r", label="memory")
    assert built == []  # building never touches the remote
    await storage.check()
    await storage.stat("")
    assert built == [1]


class FlatMemory(MemoryFileSystem):  # type: ignore[misc]
    """An object store: directories exist only as prefixes of files."""

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # object stores accept mkdir and keep nothing

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass


async def test_store_without_directories_keeps_mkdir_in_memory() -> None:
    fs = FlatMemory(global_store=False, skip_instance_cache=True)
    storage = FsspecStorage(lambda: fs, "/b", label="flat")
    await storage.check()
    await storage.mkdir("d")
    assert not fs.exists("/b/d")  # nothing stored...
    assert [(e.name, e.is_dir) for e in await storage.list_dir("")] == [("d", True)]
    assert (await storage.stat("d")).is_dir  # ...and still there for the mount
    await storage.mkdir("d/e")
    await put(storage, "d/e/f", b"data")
    assert fs.cat_file("/b/d/e/f") == b"data"
    with pytest.raises(OSError) as info:
        await storage.rmdir("d/e")
    assert info.value.errno == errno.ENOTEMPTY
    await storage.remove("d/e/f")
    assert await storage.list_dir("d") == [await storage.stat("d/e")]
    await storage.rename("d", "moved")
    assert [e.name for e in await storage.list_dir("")] == ["moved"]
    assert (await storage.stat("moved/e")).is_dir
    await storage.rmdir("moved/e")
    await storage.rmdir("moved")
    assert await storage.list_dir("") == []
    with pytest.raises(FileNotFoundError):
        await storage.stat("moved")


class RangeBlindMemory(MemoryFileSystem):  # type: ignore[misc]
    """Answers every ranged read with the whole file, as a server without Range does."""

    calls = 0

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kw: Any
    ) -> bytes:
        RangeBlindMemory.calls += 1
        return bytes(super().cat_file(path))


async def test_ranges_are_cut_out_when_the_filesystem_ignores_them() -> None:
    fs = RangeBlindMemory(global_store=False, skip_instance_cache=True)
    data = bytes(range(256)) * 1000
    fs.pipe_file("/r/f", data)
    storage = FsspecStorage(lambda: fs, "/r", label="blind")
    RangeBlindMemory.calls = 0
    reader = await storage.open_reader("f")
    assert await reader.read(1000, 10) == data[1000:1010]
    assert await reader.read(len(data) - 5, 100) == data[-5:]
    assert await reader.read(7, 3) == data[7:10]
    assert await reader.read(len(data), 1) == b""
    await reader.close()
    assert RangeBlindMemory.calls == 1  # the whole file was kept after the first read


class Demo(AbstractFileSystem):  # type: ignore[misc]
    protocol = "demo"

    def __init__(
        self,
        count: int = 1,
        ratio: float = 0.5,
        name: str | None = None,
        flag=False,  # unannotated: typed by its default
        token=None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)


def test_options_are_typed_by_the_filesystem_signature() -> None:
    typed = fsspec_options(
        "demo",
        Demo,
        {"count": "3", "ratio": "2.5", "name": "x", "flag": "true", "token": "t0k"},
    )
    assert typed == {"count": 3, "ratio": 2.5, "name": "x", "flag": True, "token": "t0k"}
    assert fsspec_options("memory", MemoryFileSystem, {"global_store": "0"}) == {
        "global_store": False
    }
    with pytest.raises(OptionError, match=r'^demo-count: invalid integer "many"'):
        fsspec_options("demo", Demo, {"count": "many"})
    with pytest.raises(OptionError) as info:
        fsspec_options("demo", Demo, {"bogus": "1"})
    assert str(info.value) == (
        'unsupported backend option "demo-bogus" '
        "(the demo options are: count, flag, headers, name, ratio, token)"
    )
    with pytest.raises(OptionError, match="demo-headers: takes a structured value"):
        fsspec_options("demo", Demo, {"headers": "{}"})
    with pytest.raises(OptionError, match="set by cloudvol itself"):
        fsspec_options("memory", MemoryFileSystem, {"skip_instance_cache": "true"})


def test_secret_looking_values_stay_out_of_errors() -> None:
    class Secretive(AbstractFileSystem):  # type: ignore[misc]
        def __init__(self, api_key: int = 0, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    with pytest.raises(OptionError) as info:
        fsspec_options("x", Secretive, {"api_key": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "x-api-key" in str(info.value)


class Failing(MemoryFileSystem):  # type: ignore[misc]
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by server, password s3cr3t")


async def test_connection_errors_are_remote_unavailable_without_secrets() -> None:
    fs = Failing(global_store=False, skip_instance_cache=True)
    storage = FsspecStorage(lambda: fs, "/r", label="failing", secrets=["s3cr3t"])
    with pytest.raises(RemoteUnavailable) as info:
        await storage.stat("f")
    assert "s3cr3t" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(RemoteUnavailable) as info:
        await storage.check()
    assert "s3cr3t" not in str(info.value)


class BusyMemory(MemoryFileSystem):  # type: ignore[misc]
    """A WebDAV server that answers 423 Locked to the first `busy` uploads, as
    `rclone serve webdav` does while another request holds its lock."""

    busy = 0

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> None:
        from webdav4.client import ResourceLocked

        if self.busy > 0:
            self.busy -= 1
            raise ResourceLocked("the resource is locked")
        super().pipe_file(path, value, **kwargs)


async def test_webdav_retries_an_upload_the_server_answered_locked() -> None:
    fs = BusyMemory(global_store=False, skip_instance_cache=True)
    storage = WebdavStorage(lambda: fs, "/w", label="webdav")
    storage.retry_pause = 0.001
    await storage.check()
    fs.busy = 3
    await put(storage, "f", b"data")
    assert fs.cat_file("/w/f") == b"data" and fs.busy == 0
    fs.busy = 100  # locked for good: the error comes through, after the retries
    with pytest.raises(OSError):
        await put(storage, "g", b"data")
    assert 80 < fs.busy < 100


async def test_other_filesystems_do_not_retry() -> None:
    fs = BusyMemory(global_store=False, skip_instance_cache=True)
    storage = FsspecStorage(lambda: fs, "/w", label="plain")
    await storage.check()
    fs.busy = 1
    with pytest.raises(OSError):
        await put(storage, "f", b"data")
    assert fs.busy == 0


async def test_read_only_protocols_refuse_changes_before_any_request() -> None:
    storage = build_fsspec_storage(BackendSpec("http", "http://192.0.2.1/files", {}))
    for change in (
        storage.open_writer("f"),
        storage.mkdir("d"),
        storage.remove("f"),
        storage.rename("a", "b"),
    ):
        with pytest.raises(OSError) as info:
            await change
        assert info.value.errno == errno.EROFS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[str]:
    """A directory served by Python's http.server, which ignores Range headers."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.txt").write_text("inner")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 40)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_http_directory_listing_and_reads(http_files: str) -> None:
    storage = build_fsspec_storage(BackendSpec("http", http_files, {}))
    try:
        await storage.check()
        listing = {e.name: e for e in await storage.list_dir("")}
        assert sorted(listing) == ["data.bin", "sub"]
        assert listing["sub"].is_dir and not listing["data.bin"].is_dir
        assert [e.name for e in await storage.list_dir("sub")] == ["inner.txt"]
        entry = await storage.stat("data.bin")
        assert (entry.is_dir, entry.size) == (False, 10240)
        data = bytes(range(256)) * 40
        reader = await storage.open_reader("data.bin")
        assert await reader.read(300, 20) == data[300:320]
        assert await reader.read(10230, 100) == data[10230:]
        await reader.close()
        assert await get(storage, "sub/inner.txt") == b"inner"
        with pytest.raises(FileNotFoundError):
            await storage.stat("absent")
        with pytest.raises(IsADirectoryError):
            await storage.open_reader("sub")
    finally:
        await storage.aclose()


# --- the factory -------------------------------------------------------------------


def test_factory_types_are_the_builders_and_installed_protocols(tmp_path: Path) -> None:
    factory = DefaultStorageFactory()
    types = factory.types
    assert {"local", "sftp", "s3", "memory", "http", "https"} <= set(types)
    # sftp is served by asyncssh only; wrappers and aliases are no volume types.
    assert not {"ssh", "s3a", "cached", "simplecache", "reference"} & set(types)
    assert set(fsspec_protocols()) <= set(types)
    assert isinstance(factory.create(BackendSpec("local", str(tmp_path))), LocalStorage)
    assert isinstance(factory.create(BackendSpec("sftp", "/", {"host": "192.0.2.1"})), SftpStorage)
    assert isinstance(factory.create(BackendSpec("s3", "bucket", {})), S3Storage)
    memory = factory.create(BackendSpec("memory", "", {"global_store": "false"}))
    assert type(memory) is FsspecStorage


def test_factory_refuses_unknown_types_listing_the_available_ones() -> None:
    factory = DefaultStorageFactory()
    with pytest.raises(OptionError) as info:
        factory.create(BackendSpec("drive", "/"))
    message = str(info.value)
    assert message.startswith('unknown backend type "drive" (available: ')
    assert "memory" in message and "s3" in message and "sftp" in message
    for not_a_volume in ("ssh", "cached", "s3a"):
        with pytest.raises(OptionError, match="unknown backend type"):
            factory.create(BackendSpec(not_a_volume, "/"))
    only = DefaultStorageFactory({"local": LocalStorage}, fsspec_fallback=False)
    with pytest.raises(OptionError, match=r'"memory" \(available: local\)'):
        only.create(BackendSpec("memory", "/"))


async def test_memory_volume_from_volume_options() -> None:
    spec = parse_volume_options(
        {"type": "memory", "memory-global-store": "false", "path": "/v"}
    ).spec.backend
    storage = DefaultStorageFactory().create(spec)
    await storage.check()
    await put(storage, "x", b"1")
    assert [e.name for e in await storage.list_dir("")] == ["x"]
    with pytest.raises(OptionError, match="memory-global-store: invalid boolean"):
        DefaultStorageFactory().create(BackendSpec("memory", "", {"global_store": "maybe"}))


# --- S3 options and errors, without a server -----------------------------------------


def s3_options(**given: object) -> S3Options:
    opts = parse_volume_options(
        {
            "type": "s3",
            "path": "b",
            **{f"s3-{k.replace('_', '-')}": str(v) for k, v in given.items()},
        }
    ).spec.backend.options
    return S3Options.parse(opts)


def test_s3_options_map_to_s3fs_arguments() -> None:
    o = s3_options(
        provider="minio",
        endpoint="minio.example:9000",
        access_key_id="AK",
        secret_access_key="SK",
        region="eu-1",
        acl="private",
        storage_class="STANDARD_IA",
    )
    args = s3fs_arguments(o)
    assert o.provider == "Minio"  # canonical spelling
    assert args["endpoint_url"] == "https://minio.example:9000"  # rclone adds https
    assert (args["key"], args["secret"], args["anon"]) == ("AK", "SK", False)
    assert args["client_kwargs"] == {"region_name": "eu-1"}
    assert args["config_kwargs"]["s3"] == {"addressing_style": "path"}
    # rclone's --contimeout and --timeout by default, else the volume's.
    assert (args["config_kwargs"]["connect_timeout"], args["config_kwargs"]["read_timeout"]) == (
        60.0,
        300.0,
    )
    bounded = s3fs_arguments(o, Timeouts(connect=5.0, io_idle=7.0))["config_kwargs"]
    assert (bounded["connect_timeout"], bounded["read_timeout"]) == (5.0, 7.0)
    unbounded = s3fs_arguments(o, Timeouts(connect=0.0, io_idle=float("inf")))["config_kwargs"]
    assert (unbounded["connect_timeout"], unbounded["read_timeout"]) == (None, None)
    assert args["s3_additional_kwargs"] == {"ACL": "private", "StorageClass": "STANDARD_IA"}
    assert args["cache_regions"] is False
    assert o.list_v2 is True
    assert "SK" not in repr(o)


def test_s3_provider_quirks_and_credentials_modes() -> None:
    aws = s3_options(provider="AWS")
    assert aws.addressing_style == "virtual" and aws.list_v2
    assert s3fs_arguments(aws)["anon"] is True  # no keys, no env_auth: anonymous
    assert s3fs_arguments(aws)["cache_regions"] is True  # find the bucket's region
    # AWS needs virtual-host style whatever force_path_style says, as in rclone.
    assert s3_options(provider="AWS", force_path_style="true").addressing_style == "virtual"
    other = s3_options(provider="Other", endpoint="http://h:1")
    assert other.addressing_style == "path" and not other.list_v2
    assert s3fs_arguments(other)["client_kwargs"] == {"region_name": "us-east-1"}
    assert s3_options(provider="Other", list_version=2).list_v2
    assert s3_options(force_path_style="false").addressing_style == "virtual"
    env = s3_options(env_auth="true")
    assert s3fs_arguments(env)["anon"] is False and s3fs_arguments(env)["key"] is None


def test_s3_options_are_checked() -> None:
    with pytest.raises(OptionError, match="both access_key_id and secret_access_key"):
        s3_options(access_key_id="AK")
    with pytest.raises(OptionError, match="at least 5Mi"):
        s3_options(chunk_size="1M")
    with pytest.raises(OptionError, match=r"s3-provider: unknown value \"Nope\""):
        s3_options(provider="Nope")
    with pytest.raises(OptionError, match="s3 option 'endpoint' must be of type str"):
        S3Options.parse({"endpoint": 5})


class FakeClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"An error occurred ({code}): {message}")
        self.response = {"Error": {"Code": code, "Message": message}}


def test_s3_errors_follow_the_port_conventions() -> None:
    storage = S3Storage(
        BackendSpec(
            "s3",
            "bkt/dir",
            {"endpoint": "http://h:9", "access_key_id": "AK", "secret_access_key": "SeCrEt"},
        )
    )
    assert (storage.bucket, storage.prefix) == ("bkt", "dir")

    def mapped(code: str, message: str = "msg") -> BaseException:
        # s3fs raises its own OSError with the botocore error as the cause.
        wrapped = OSError(message)
        wrapped.__cause__ = FakeClientError(code, message)
        return storage.objects.error(wrapped, "p")

    assert isinstance(mapped("NoSuchKey"), FileNotFoundError)
    assert isinstance(mapped("404"), FileNotFoundError)
    missing = mapped("NoSuchBucket", "The specified bucket does not exist")
    assert isinstance(missing, RemoteUnavailable)
    assert 'bucket "bkt" does not exist' in str(missing)
    refused = mapped("SignatureDoesNotMatch", "signature SeCrEt mismatch")
    assert isinstance(refused, RemoteUnavailable)
    assert "credentials refused" in str(refused)
    assert "SeCrEt" not in str(refused)
    denied = mapped("AccessDenied")
    assert isinstance(denied, PermissionError) and denied.errno == errno.EACCES
    slow = mapped("SlowDown")
    assert isinstance(slow, OSError) and slow.errno == errno.EAGAIN
