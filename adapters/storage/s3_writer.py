"""Streamed uploads to S3: up to `chunk_size` is one PUT; beyond, a multipart
upload starts and parts are sent while the file is written. Abort (or any
failure) cancels it: nothing is left behind."""

from __future__ import annotations

import asyncio
import errno
import mimetypes
from typing import Any

from adapters.storage.s3_bucket import S3Bucket
from domain.paths import basename


class S3Writer:
    """Streams an upload: one PUT up to `chunk_size`, else a multipart upload whose
    parts go out while the file is written, `upload_concurrency` at a time."""

    def __init__(self, bucket: S3Bucket, key: str, path: str) -> None:
        self._bucket, self._key, self._path = bucket, key, path
        self._options = bucket.options
        self._part_size = bucket.options.chunk_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(bucket.options.upload_concurrency)
        self._failure: BaseException | None = None
        self._next_part = 1
        self._done = False
        content_type, _ = mimetypes.guess_type(basename(path))
        self._content_type = content_type or "application/octet-stream"

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._bucket.error(self._failure, self._path)

    async def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("write on a finished upload")
        try:
            self._raise_failure()
            self._buffer += data
            # Strictly more than a part: a file of exactly one part stays a single
            # PUT, and the last part of a multipart upload is never empty.
            while len(self._buffer) > self._part_size:
                part = bytes(self._buffer[: self._part_size])
                del self._buffer[: self._part_size]
                await self._send(part)
        except BaseException:
            await self.abort()  # a failed upload leaves no parts behind
            raise

    async def _send(self, part: bytes) -> None:
        b = self._bucket
        if self._upload_id is None:
            upload = await b.guard(
                self._path,
                b.call("create_multipart_upload", Key=self._key, ContentType=self._content_type),
            )
            self._upload_id = str(upload["UploadId"])
        number = self._next_part
        if number > self._options.max_upload_parts:
            raise OSError(
                errno.EFBIG,
                f"file larger than {self._options.max_upload_parts} parts of "
                f"{self._part_size} bytes (raise s3-chunk-size)",
                self._path,
            )
        self._next_part += 1
        await self._slots.acquire()
        self._raise_failure()
        task = asyncio.create_task(self._upload_part(self._upload_id, number, part))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _upload_part(self, upload_id: str, number: int, part: bytes) -> None:
        try:
            answer = await self._bucket.call(
                "upload_part",
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                Body=part,
            )
            self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        except Exception as exc:
            if self._failure is None:
                self._failure = exc
        finally:
            self._slots.release()

    async def commit(self) -> None:
        if self._done:
            raise ValueError("commit on a finished upload")
        b = self._bucket
        try:
            if self._upload_id is None:
                await b.put(
                    self._key, bytes(self._buffer), self._path, ContentType=self._content_type
                )
            else:
                await self._send(bytes(self._buffer))
                if self._pending:
                    await asyncio.gather(*self._pending)
                self._raise_failure()
                parts = sorted(self._parts, key=lambda p: int(p["PartNumber"]))
                await b.guard(
                    self._path,
                    b.call(
                        "complete_multipart_upload",
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts},
                    ),
                )
                self._upload_id = None
        except BaseException:
            await self.abort()
            raise
        self._done = True
        self._buffer = bytearray()

    async def abort(self) -> None:
        self._done = True
        self._buffer = bytearray()
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            await self._bucket.abort_upload(self._key, upload_id)
