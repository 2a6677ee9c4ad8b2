"""S3Storage against moto's standalone S3 server: the shared storage contract
(tests/storage_contract.py), then what only S3 has (markers, metadata mtimes,
streamed multipart uploads, multipart copies) and its errors: a missing bucket,
an endpoint that refuses or never answers, refused credentials."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from adapters.storage import s3 as s3_module
from adapters.storage import s3_reader
from adapters.storage.factory import DefaultStorageFactory
from adapters.storage.s3 import S3Storage
from application.vfs.reader import ReadAhead
from domain.errors import RemoteUnavailable
from domain.metadata import FileMetadata
from domain.volume import BackendSpec
from domain.volume_options import parse_volume_options
from tests.integration.fixtures.moto_s3 import MotoServer, moto_s3_auth, moto_s3_session
from tests.storage_contract import Backend, StorageContract, get, put
from tests.timing import ManualTimers

__all__ = ["moto_s3_auth", "moto_s3_session"]  # fixtures used by name

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiobotocore is an asyncio library


def new_bucket(server: MotoServer) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


def s3_storage(server: MotoServer, path: str, **options: str) -> S3Storage:
    """Built the way a volume is: from `-o` options through the factory."""
    opts = {
        "type": "s3",
        "s3-provider": "Other",
        "s3-endpoint": server.endpoint,
        "s3-access-key-id": server.access_key_id,
        "s3-secret-access-key": server.secret_access_key,
        "path": path,
    }
    opts.update({f"s3-{k.replace('_', '-')}": v for k, v in options.items()})
    storage = DefaultStorageFactory().create(parse_volume_options(opts).spec.backend)
    assert isinstance(storage, S3Storage)
    return storage


@dataclass
class S3View:
    client: Any
    bucket: str
    prefix: str

    def key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, path) if p)

    def read(self, path: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=self.key(path))["Body"].read()
        return data

    def names(self, directory: str = "") -> list[str]:
        prefix = self.key(directory) + "/" if self.key(directory) else ""
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        names = [p["Prefix"][len(prefix) : -1] for p in page.get("CommonPrefixes", [])]
        names += [c["Key"][len(prefix) :] for c in page.get("Contents", [])]
        return sorted(n for n in names if n)  # "" is the directory's own marker

    def keys(self) -> list[str]:
        page = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(c["Key"] for c in page.get("Contents", []))

    def exists(self, path: str) -> bool:
        key = self.key(path)
        if key in self.keys():
            return True
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key + "/", MaxKeys=1)
        return bool(page.get("Contents"))

    def mtime(self, path: str) -> float:
        head = self.client.head_object(Bucket=self.bucket, Key=self.key(path))
        return float(head["Metadata"]["mtime"])


# Provider Other lists with ListObjects v1 at the bucket root; Minio with v2 below
# a prefix: both listing paths, and both kinds of root.
@pytest.fixture(params=[("Other", ""), ("Minio", "base/dir")], ids=["v1-root", "v2-prefix"])
async def backend(
    request: pytest.FixtureRequest, moto_s3_session: MotoServer
) -> AsyncIterator[Backend]:
    provider, prefix = request.param
    bucket = new_bucket(moto_s3_session)
    path = f"{bucket}/{prefix}" if prefix else bucket
    storage = s3_storage(moto_s3_session, path, provider=provider)
    await storage.check()
    try:
        yield Backend(storage, S3View(moto_s3_session.client(), bucket, prefix))
    finally:
        await storage.aclose()


class TestS3Storage(StorageContract):
    """The shared behaviour (tests/storage_contract.py) on S3."""


# --- S3 layout -----------------------------------------------------------------------


@pytest.fixture
def bucket(moto_s3_session: MotoServer) -> str:
    return new_bucket(moto_s3_session)


async def test_directories_are_markers_and_prefixes(
    moto_s3_session: MotoServer, bucket: str
) -> None:
    client = moto_s3_session.client()
    storage = s3_storage(moto_s3_session, bucket)
    try:
        await storage.mkdir("made")
        view = S3View(client, bucket, "")
        assert view.keys() == ["made/"]
        head = client.head_object(Bucket=bucket, Key="made/")
        assert head["ContentLength"] == 0
        # Written by someone else, without markers (rclone's default): still directories.
        client.put_object(Bucket=bucket, Key="a/b/c.txt", Body=b"c")
        assert [(e.name, e.is_dir) for e in await storage.list_dir("")] == [
            ("a", True),
            ("made", True),
        ]
        assert [(e.name, e.is_dir) for e in await storage.list_dir("a")] == [("b", True)]
        assert await storage.list_dir("made") == []  # the marker itself is not listed
        # Names no path can hold are not shown.
        for odd in ("a/./x", "a/../y", "a//z"):
            client.put_object(Bucket=bucket, Key=odd, Body=b"!")
        assert [e.name for e in await storage.list_dir("a")] == ["b"]
    finally:
        await storage.aclose()


@pytest.mark.parametrize("provider", ["Other", "Minio"])  # ListObjects v1, v2
async def test_listings_follow_every_page(
    moto_s3_session: MotoServer, bucket: str, provider: str
) -> None:
    client = moto_s3_session.client()
    for i in range(5):
        client.put_object(Bucket=bucket, Key=f"d/f{i}", Body=b"x" * i)
    for name in ("d/sub1/x", "d/sub2/", "d/sub3/y"):
        client.put_object(Bucket=bucket, Key=name, Body=b"")
    storage = s3_storage(moto_s3_session, bucket, provider=provider, list_chunk="2")
    try:
        listing = [(e.name, e.is_dir, e.size) for e in await storage.list_dir("d")]
        assert listing == [
            *[(f"f{i}", False, i) for i in range(5)],
            ("sub1", True, 0),
            ("sub2", True, 0),
            ("sub3", True, 0),
        ]
        await storage.rename("d", "e")  # every key of the tree, page by page
        assert len(S3View(client, bucket, "").keys()) == 8
        assert all(k.startswith("e/") for k in S3View(client, bucket, "").keys())
    finally:
        await storage.aclose()


async def test_mtime_is_rclones_metadata(moto_s3_session: MotoServer, bucket: str) -> None:
    client = moto_s3_session.client()
    # As rclone uploads: X-Amz-Meta-Mtime in seconds with a fraction.
    client.put_object(Bucket=bucket, Key="by-rclone", Body=b"r", Metadata={"mtime": "1600000000.5"})
    storage = s3_storage(moto_s3_session, bucket)
    try:
        assert (await storage.stat("by-rclone")).mtime == pytest.approx(1600000000.5)
        await put(storage, "mine.txt", b"hello")
        before = client.head_object(Bucket=bucket, Key="mine.txt")
        assert before["ContentType"] == "text/plain"
        await storage.set_mtime("mine.txt", 1234567890.25)
        after = client.head_object(Bucket=bucket, Key="mine.txt")
        assert after["Metadata"]["mtime"] == "1234567890.250000000"
        assert after["ContentType"] == "text/plain"  # kept across the metadata copy
        assert (await storage.stat("mine.txt")).mtime == pytest.approx(1234567890.25)
        assert await get(storage, "mine.txt") == b"hello"
    finally:
        await storage.aclose()


async def test_metadata_is_kept_in_rclones_keys(moto_s3_session: MotoServer, bucket: str) -> None:
    client = moto_s3_session.client()
    # As rclone -M copies a local file: its mode with the type bits, RFC 3339 atime.
    client.put_object(
        Bucket=bucket,
        Key="by-rclone",
        Body=b"r",
        Metadata={"mode": "100750", "uid": "12", "gid": "34", "atime": "1960-01-01T00:00:00Z"},
    )
    storage = s3_storage(moto_s3_session, bucket)
    try:
        meta = (await storage.stat("by-rclone")).metadata
        assert meta is not None
        assert (meta.mode, meta.uid, meta.gid, meta.atime) == (0o750, 12, 34, -315619200.0)
        await put(storage, "mine", b"hello")
        after_2038 = 4_102_444_800.5
        await storage.set_metadata(
            "mine", FileMetadata(mode=0o640, uid=1, gid=2, atime=after_2038, mtime=-1.5)
        )
        keys = client.head_object(Bucket=bucket, Key="mine")["Metadata"]
        assert keys == {
            "mode": "100640", "uid": "1", "gid": "2",
            "atime": "2100-01-01T00:00:00.500000000Z", "mtime": "-1.500000000",
        }  # fmt: skip
        entry = await storage.stat("mine")
        assert entry.mtime == -1.5
        assert entry.metadata == FileMetadata(0o640, 1, 2, after_2038, -1.5)
        assert await get(storage, "mine") == b"hello"
    finally:
        await storage.aclose()


async def test_big_upload_streams_as_multipart(moto_s3_session: MotoServer, bucket: str) -> None:
    client = moto_s3_session.client()
    storage = s3_storage(moto_s3_session, bucket, chunk_size="5Mi", upload_concurrency="2")
    data = os.urandom(12 * MiB)
    try:
        writer = await storage.open_writer("big.bin")
        for start in range(0, len(data), MiB):
            await writer.write(data[start : start + MiB])
        # Parts went out while writing; the object appears only at commit.
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == ["big.bin"]
        assert "big.bin" not in S3View(client, bucket, "").keys()
        await writer.commit()
        head = client.head_object(Bucket=bucket, Key="big.bin")
        assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB
        assert client.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data
        assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        await storage.aclose()


async def test_aborted_multipart_upload_leaves_nothing(
    moto_s3_session: MotoServer, bucket: str
) -> None:
    client = moto_s3_session.client()
    storage = s3_storage(moto_s3_session, bucket)
    try:
        writer = await storage.open_writer("gone.bin")
        await writer.write(os.urandom(11 * MiB))
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")
        await writer.abort()
        assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
        assert S3View(client, bucket, "").keys() == []
    finally:
        await storage.aclose()


async def test_rename_of_big_objects_copies_in_parts(
    moto_s3_session: MotoServer, bucket: str
) -> None:
    client = moto_s3_session.client()
    storage = s3_storage(moto_s3_session, bucket, copy_cutoff="5Mi")
    data = os.urandom(11 * MiB)
    try:
        await storage.mkdir("d")
        await put(storage, "d/big", data)
        await storage.set_mtime("d/big", 1_500_000_000.0)  # itself a multipart copy
        await storage.rename("d", "e")
        assert client.get_object(Bucket=bucket, Key="e/big")["Body"].read() == data
        head = client.head_object(Bucket=bucket, Key="e/big")
        assert head["ETag"].strip('"').endswith("-3")  # copied in 5 MiB parts
        assert head["Metadata"]["mtime"].startswith("1500000000.")
        assert (await storage.stat("e/big")).mtime == pytest.approx(1_500_000_000.0)
        assert S3View(client, bucket, "").keys() == ["e/", "e/big"]  # the marker moved too
    finally:
        await storage.aclose()


async def test_root_prefix_that_is_an_object_is_refused(
    moto_s3_session: MotoServer, bucket: str
) -> None:
    moto_s3_session.client().put_object(Bucket=bucket, Key="plain", Body=b"x")
    storage = s3_storage(moto_s3_session, f"{bucket}/plain")
    with pytest.raises(RemoteUnavailable, match="is a file, not a directory"):
        await storage.check()
    await storage.aclose()
    fresh = s3_storage(moto_s3_session, f"{bucket}/not/yet/there")
    await fresh.check()  # an empty prefix is an empty directory
    assert await fresh.list_dir("") == []
    await fresh.aclose()


# --- errors --------------------------------------------------------------------------


async def test_unknown_bucket_is_remote_unavailable(moto_s3_session: MotoServer) -> None:
    storage = s3_storage(moto_s3_session, "no-such-bucket/dir")
    with anyio.fail_after(10), pytest.raises(RemoteUnavailable) as info:
        await storage.check()
    assert 'bucket "no-such-bucket" does not exist' in str(info.value)
    assert moto_s3_session.secret_access_key not in str(info.value)
    await storage.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_refused_endpoint_fails_fast(moto_s3_session: MotoServer) -> None:
    storage = s3_storage(
        MotoServer(
            endpoint=f"http://127.0.0.1:{closed_port()}",
            port=0,
            access_key_id="AK",
            secret_access_key="never-shown",
            region="us-east-1",
            log_file=moto_s3_session.log_file,
        ),
        "bucket",
    )
    started = time.monotonic()
    with pytest.raises(RemoteUnavailable) as info:
        await storage.check()
    assert time.monotonic() - started < 10
    assert "Could not connect" in str(info.value)
    assert "never-shown" not in str(info.value)
    await storage.aclose()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


async def test_endpoint_that_never_answers_times_out(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "CHECK_TIMEOUT", 2.0)  # 25 s in service
    storage = S3Storage(BackendSpec("s3", "bucket", {"endpoint": silent_endpoint}))
    started = time.monotonic()
    with pytest.raises(RemoteUnavailable, match="no answer within 2 s"):
        await storage.check()
    assert time.monotonic() - started < 5
    await storage.aclose()
    monkeypatch.undo()
    assert s3_module.CHECK_TIMEOUT <= 25  # in service: well inside Docker's 2 minutes


async def test_refused_credentials(moto_s3_auth: MotoServer) -> None:
    client = moto_s3_auth.client()
    client.create_bucket(Bucket="guarded")
    client.put_object(Bucket="guarded", Key="f", Body=b"ok")
    # moto's signature check (auth mode) rejects any request whose query holds a
    # "/" (boto3's too), so only calls without one are made here: check() lists
    # the bucket root, a read is HEAD and GET.
    good = s3_storage(moto_s3_auth, "guarded")
    await good.check()
    assert await get(good, "f") == b"ok"
    await good.aclose()

    wrong_secret = s3_storage(moto_s3_auth, "guarded", secret_access_key="not-the-secret-123")
    with pytest.raises(RemoteUnavailable) as info:
        await wrong_secret.check()
    assert "credentials refused" in str(info.value)
    assert "SignatureDoesNotMatch" in str(info.value)
    assert "not-the-secret-123" not in str(info.value)
    await wrong_secret.aclose()

    unknown_key = s3_storage(moto_s3_auth, "guarded", access_key_id="AKIANOBODY000000")
    with pytest.raises(RemoteUnavailable, match="InvalidAccessKeyId"):
        await unknown_key.check()
    await unknown_key.aclose()


async def test_secrets_stay_out_of_debug_logs(
    moto_s3_session: MotoServer, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As the daemon runs at -vv: every library's DEBUG records are collected.
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.NOTSET)
    storage = s3_storage(moto_s3_session, bucket, session_token="TokenSecret123")
    try:
        await storage.check()
        await put(storage, "f", b"x")
        assert await get(storage, "f") == b"x"
    finally:
        await storage.aclose()
    assert caplog.records  # something was logged...
    assert "TokenSecret123" not in caplog.text  # ...but never the token
    assert moto_s3_session.secret_access_key not in caplog.text


# --- streamed reads ------------------------------------------------------------------


@dataclass
class Gets:
    """The storage's get_object requests (their Range), and the bodies they opened."""

    ranges: list[str]
    bodies: list[Any]


def count_gets(storage: S3Storage, monkeypatch: pytest.MonkeyPatch) -> Gets:
    gets = Gets([], [])
    real = storage.client.call

    async def counted(method: str, **kwargs: Any) -> Any:
        if method != "get_object":
            return await real(method, **kwargs)
        gets.ranges.append(kwargs["Range"])
        response = await real(method, **kwargs)
        gets.bodies.append(response["Body"])
        return response

    monkeypatch.setattr(storage.client, "call", counted)
    return gets


@pytest.fixture
async def streamed(
    moto_s3_session: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[S3Storage, bytes, Gets]]:
    """A 20 MiB object "big.bin", the storage, and its GETs from now on."""
    data = os.urandom(20 * MiB)
    moto_s3_session.client().put_object(Bucket=bucket, Key="big.bin", Body=data)
    storage = s3_storage(moto_s3_session, bucket)
    try:
        yield storage, data, count_gets(storage, monkeypatch)
    finally:
        await storage.aclose()


async def test_sequential_reads_stream_one_get(
    streamed: tuple[S3Storage, bytes, Gets],
) -> None:
    storage, data, gets = streamed
    reader = await storage.open_reader("big.bin")
    try:
        # As the VFS reads ahead: growing pieces, several in flight at once.
        got = [await reader.read(0, 512 * 1024)]
        pos, piece = 512 * 1024, MiB
        while pos < len(data):
            starts = [pos + i * piece for i in range(3)]
            got += await asyncio.gather(*(reader.read(start, piece) for start in starts))
            pos, piece = starts[-1] + piece, min(piece * 2, 4 * MiB)
        assert b"".join(got) == data
        assert await reader.read(len(data), 10) == b""  # past the end: no request
    finally:
        await reader.close()
    assert gets.ranges == [f"bytes=0-{len(data) - 1}"]


async def test_read_ahead_streams_one_get(streamed: tuple[S3Storage, bytes, Gets]) -> None:
    storage, data, gets = streamed
    stream = ReadAhead(lambda: storage.open_reader("big.bin"), len(data), window=16 * MiB)
    try:
        got = [await stream.read(start, 128 * 1024) for start in range(0, len(data), 128 * 1024)]
        assert b"".join(got) == data
    finally:
        await stream.close()
    assert len(gets.ranges) == 1


async def test_seeks_open_new_gets(streamed: tuple[S3Storage, bytes, Gets]) -> None:
    storage, data, gets = streamed
    reader = await storage.open_reader("big.bin")

    async def check(offset: int, size: int) -> None:
        assert await reader.read(offset, size) == data[offset : offset + size]

    try:
        await check(0, MiB)
        await check(MiB + 4096, MiB)  # a little ahead: read through the gap
        assert len(gets.ranges) == 1
        await check(12 * MiB, MiB)  # far ahead: a new GET there
        assert gets.ranges[1:] == [f"bytes={12 * MiB}-{len(data) - 1}"]
        await check(MiB, 100)  # behind: another
        assert gets.ranges[2:] == [f"bytes={MiB}-{len(data) - 1}"]
        # Each stream goes on where it stands, without more requests.
        await check(13 * MiB, MiB)
        await check(MiB + 100, 2 * MiB)
        assert len(gets.ranges) == 3
    finally:
        await reader.close()


async def test_windows_double(
    streamed: tuple[S3Storage, bytes, Gets], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, data, gets = streamed
    monkeypatch.setattr(s3_reader, "_FIRST_WINDOW", MiB)
    reader = await storage.open_reader("big.bin")
    try:
        got = [await reader.read(start, 512 * 1024) for start in range(0, 8 * MiB, 512 * 1024)]
        assert b"".join(got) == data[: 8 * MiB]
    finally:
        await reader.close()
    assert gets.ranges == [
        f"bytes=0-{MiB - 1}",
        f"bytes={MiB}-{3 * MiB - 1}",
        f"bytes={3 * MiB}-{7 * MiB - 1}",
        f"bytes={7 * MiB}-{15 * MiB - 1}",
    ]


async def test_closed_reader_refuses_reads(streamed: tuple[S3Storage, bytes, Gets]) -> None:
    storage, data, gets = streamed
    reader = await storage.open_reader("big.bin")
    assert await reader.read(0, MiB) == data[:MiB]
    await reader.close()
    assert gets.bodies[0].raw_stream.closed  # its connection is given back
    with pytest.raises(ValueError, match="closed"):
        await reader.read(MiB, MiB)
    assert len(gets.ranges) == 1


async def test_idle_and_surplus_bodies_are_closed(
    streamed: tuple[S3Storage, bytes, Gets],
) -> None:
    storage, data, gets = streamed
    timers = ManualTimers()
    storage.schedule_idle_close = timers
    reader = await storage.open_reader("big.bin")
    try:
        # Each behind the others: a stream each, and no more than four are kept.
        for start in range(16 * MiB, -1, -4 * MiB):
            assert await reader.read(start, 100) == data[start : start + 100]
        assert [b.raw_stream.closed for b in gets.bodies] == [True] + [False] * 4
        timers.expire()  # idle: their connections go back to the pool
        assert all(b.raw_stream.closed for b in gets.bodies)
        assert await reader.read(100, 100) == data[100:200]
        assert len(gets.ranges) == 6
    finally:
        await reader.close()


@pytest.mark.parametrize("drop", ["close", "reset"])
async def test_dropped_body_is_reopened_where_it_stopped(
    streamed: tuple[S3Storage, bytes, Gets], drop: str
) -> None:
    storage, data, gets = streamed
    reader = await storage.open_reader("big.bin")
    try:
        assert await reader.read(0, MiB) == data[:MiB]
        body = gets.bodies[0]
        if drop == "close":
            body.close()
        else:  # the connection reset under the body
            body.raw_stream.connection.transport.abort()
        assert await reader.read(MiB, 4 * MiB) == data[MiB : 5 * MiB]
        assert await reader.read(5 * MiB, 4 * MiB) == data[5 * MiB : 9 * MiB]
        assert len(gets.ranges) == 2
        # Reopened where the body stopped: what it had delivered is not asked again.
        assert gets.ranges[1].startswith("bytes=") and MiB <= int(gets.ranges[1][6:].split("-")[0])
    finally:
        await reader.close()


async def test_a_body_failing_again_is_an_error(
    streamed: tuple[S3Storage, bytes, Gets], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, _, gets = streamed
    reader = await storage.open_reader("big.bin")
    real = storage.client.call

    async def cut(method: str, **kwargs: Any) -> Any:
        response = await real(method, **kwargs)
        response["Body"].raw_stream.connection.transport.abort()
        return response

    monkeypatch.setattr(storage.client, "call", cut)  # every body is reset at once (still counted)
    try:
        with pytest.raises(OSError) as info:
            await reader.read(0, 4 * MiB)
        assert info.value.filename == "big.bin"
        assert not isinstance(info.value, RemoteUnavailable)
    finally:
        await reader.close()
    assert len(gets.ranges) == 2  # reopened once, then given up


async def test_missing_object_while_reading(
    moto_s3_session: MotoServer, streamed: tuple[S3Storage, bytes, Gets], bucket: str
) -> None:
    storage, _, gets = streamed
    reader = await storage.open_reader("big.bin")
    moto_s3_session.client().delete_object(Bucket=bucket, Key="big.bin")
    try:
        with pytest.raises(FileNotFoundError):
            await reader.read(0, MiB)
    finally:
        await reader.close()
    assert len(gets.ranges) == 1
