"""S3Reader and S3Writer against a fake bucket: the reader's windows, skip-ahead,
kept bodies and idle close; the writer's single PUT, multipart upload and abort.
(tests/integration/test_storage_s3.py runs them against moto's server.)"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.storage import s3_reader
from adapters.storage.s3_bucket import S3Bucket
from adapters.storage.s3_reader import S3Reader
from adapters.storage.s3_writer import S3Writer
from tests.timing import ManualTimers

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self._data, self.closed = data, False

    async def read(self, size: int) -> bytes:
        piece, self._data = self._data[:size], self._data[size:]
        return piece

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeBucket:
    """The requests S3Reader and S3Writer make, answered from memory."""

    data: bytes = b""
    chunk_size: int = 5 * MiB
    ranges: list[str] = field(default_factory=list)
    bodies: list[FakeBody] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)
    parts: dict[int, bytes] = field(default_factory=dict)
    label = "s3 fake"

    @property
    def options(self) -> Any:
        return type(
            "Options",
            (),
            {"chunk_size": self.chunk_size, "upload_concurrency": 2, "max_upload_parts": 10000},
        )()

    def error(self, exc: BaseException, path: str) -> BaseException:
        return exc

    async def guard(self, path: str, coro: Any) -> Any:
        return await coro

    async def put(self, key: str, body: bytes, path: str, **extra: Any) -> None:
        self.requests.append("put_object")
        self.objects[key] = body

    async def abort_upload(self, key: str, upload_id: str) -> None:
        self.requests.append("abort_multipart_upload")

    async def call(self, method: str, **kwargs: Any) -> Any:
        self.requests.append(method)
        if method == "get_object":
            self.ranges.append(kwargs["Range"])
            start, stop = (int(n) for n in kwargs["Range"][6:].split("-"))
            body = FakeBody(self.data[start : stop + 1])
            self.bodies.append(body)
            return {"Body": body, "ContentLength": len(self.data[start : stop + 1])}
        if method == "create_multipart_upload":
            return {"UploadId": "u1"}
        if method == "upload_part":
            self.parts[kwargs["PartNumber"]] = kwargs["Body"]
            return {"ETag": f"e{kwargs['PartNumber']}"}
        if method == "complete_multipart_upload":
            numbers = [p["PartNumber"] for p in kwargs["MultipartUpload"]["Parts"]]
            self.objects[kwargs["Key"]] = b"".join(self.parts[n] for n in numbers)
            return {}
        raise AssertionError(method)


def reader_on(bucket: FakeBucket, timers: ManualTimers | None = None) -> S3Reader:
    fake: Any = bucket  # duck-typed S3Bucket
    typed: S3Bucket = fake
    return S3Reader(typed, "k", "f", len(bucket.data), timers or ManualTimers())


async def test_sequential_reads_share_one_body_and_windows_double(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3_reader, "_FIRST_WINDOW", MiB)
    bucket = FakeBucket(os.urandom(8 * MiB))
    reader = reader_on(bucket)
    got = [await reader.read(start, 512 * 1024) for start in range(0, 8 * MiB, 512 * 1024)]
    assert b"".join(got) == bucket.data
    assert bucket.ranges == [
        f"bytes=0-{MiB - 1}",
        f"bytes={MiB}-{3 * MiB - 1}",
        f"bytes={3 * MiB}-{7 * MiB - 1}",
        f"bytes={7 * MiB}-{8 * MiB - 1}",
    ]
    await reader.close()
    assert all(body.closed for body in bucket.bodies)


async def test_short_skips_read_through_and_far_ones_open_a_stream() -> None:
    bucket = FakeBucket(os.urandom(20 * MiB))
    reader = reader_on(bucket)
    assert await reader.read(0, MiB) == bucket.data[:MiB]
    assert await reader.read(MiB + 4096, 100) == bucket.data[MiB + 4096 : MiB + 4196]
    assert len(bucket.ranges) == 1  # within the skip: the same body
    assert await reader.read(12 * MiB, 100) == bucket.data[12 * MiB : 12 * MiB + 100]
    assert bucket.ranges[1] == f"bytes={12 * MiB}-{20 * MiB - 1}"
    await reader.close()
    with pytest.raises(ValueError, match="closed"):
        await reader.read(0, 1)


async def test_at_most_four_bodies_are_kept_and_idle_ones_close() -> None:
    bucket, timers = FakeBucket(os.urandom(20 * MiB)), ManualTimers()
    reader = reader_on(bucket, timers)
    for start in range(16 * MiB, -1, -4 * MiB):  # each behind the others
        assert await reader.read(start, 100) == bucket.data[start : start + 100]
    assert [b.closed for b in bucket.bodies] == [True] + [False] * 4
    timers.expire()
    assert all(b.closed for b in bucket.bodies)
    assert await reader.read(100, 100) == bucket.data[100:200]
    assert len(bucket.ranges) == 6
    await reader.close()


def writer_on(bucket: FakeBucket) -> S3Writer:
    fake: Any = bucket
    return S3Writer(fake, "dir/f.txt", "f.txt")


async def test_a_file_of_one_part_is_one_put() -> None:
    bucket = FakeBucket()
    writer = writer_on(bucket)
    await writer.write(b"x" * bucket.chunk_size)
    await writer.commit()
    assert bucket.requests == ["put_object"]
    assert bucket.objects["dir/f.txt"] == b"x" * bucket.chunk_size


async def test_a_larger_file_streams_as_a_multipart_upload() -> None:
    bucket = FakeBucket(chunk_size=5 * MiB)
    writer = writer_on(bucket)
    data = os.urandom(12 * MiB)
    for start in range(0, len(data), MiB):
        await writer.write(data[start : start + MiB])
    await asyncio.sleep(0)  # the parts' tasks run
    assert sorted(bucket.parts) == [1, 2]  # sent while the file is written
    await writer.commit()
    assert bucket.objects["dir/f.txt"] == data
    assert sorted(bucket.parts) == [1, 2, 3]
    with pytest.raises(ValueError, match="finished upload"):
        await writer.write(b"more")


async def test_abort_cancels_the_multipart_upload() -> None:
    bucket = FakeBucket(chunk_size=5 * MiB)
    writer = writer_on(bucket)
    await writer.write(os.urandom(6 * MiB))
    await writer.abort()
    assert bucket.requests[-1] == "abort_multipart_upload"
    assert "dir/f.txt" not in bucket.objects
