"""Requests on the volume's bucket, by key: metadata, listing pages, puts,
server-side copies (in parts above `copy_cutoff`), deletes; failures in the
port's terms (s3_errors.py), about the volume path they were made for."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import anyio
from loguru import logger

from adapters.storage.s3_client import S3Client
from adapters.storage.s3_errors import s3_error
from adapters.storage.s3_options import S3Options

_DELETE_BATCH = 1000
# A replacement for a copied object's metadata: (metadata, content type or "").
Replacement = tuple[Mapping[str, str], str]


async def all_of(*awaitables: Awaitable[Any]) -> list[Any]:
    """Results of all of them; the first failure is raised only once every one
    has finished, so no request outlives the operation that made it."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class S3Bucket:
    """The bucket's objects, by key; see the module docstring."""

    def __init__(self, client: S3Client, options: S3Options, label: str) -> None:
        self.client, self.options, self.label = client, options, label

    async def call(self, method: str, **kwargs: Any) -> Any:
        return await self.client.call(method, **kwargs)

    def error(self, exc: BaseException, path: str) -> BaseException:
        return s3_error(
            exc, path, label=self.label, bucket=self.client.bucket, secrets=self.options.secrets
        )

    async def guard(self, path: str, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except Exception as exc:
            raise self.error(exc, path) from None

    async def head(self, key: str, path: str) -> dict[str, Any] | None:
        """The object's HEAD answer, or None if there is no such object."""
        if not key:
            return None
        try:
            head: dict[str, Any] = await self.call("head_object", Key=key)
        except Exception as exc:
            mapped = self.error(exc, path)
            if isinstance(mapped, FileNotFoundError):
                return None
            raise mapped from None
        return head

    async def page(
        self, prefix: str, *, delimiter: bool, limit: int = 0, after: str = ""
    ) -> dict[str, Any]:
        """One listing page of keys under `prefix`, from `after` (a continuation
        token for ListObjects v2, a marker key for v1)."""
        args: dict[str, Any] = {"Prefix": prefix, "MaxKeys": limit or self.options.list_chunk}
        if delimiter:
            args["Delimiter"] = "/"
        if self.options.list_v2:
            if after:
                args["ContinuationToken"] = after
            page: dict[str, Any] = await self.call("list_objects_v2", **args)
        else:
            if after:
                args["Marker"] = after
            page = await self.call("list_objects", **args)
        return page

    async def pages(self, prefix: str, *, delimiter: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every listing page of keys under `prefix` (iterate to the end)."""
        after = ""
        while True:
            page = await self.page(prefix, delimiter=delimiter, after=after)
            yield page
            if not page.get("IsTruncated"):
                return
            if self.options.list_v2:
                after = page["NextContinuationToken"]
                continue
            keys = [c["Key"] for c in page.get("Contents", [])]
            keys += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            after = page.get("NextMarker") or (max(keys) if keys else "")
            if not after:
                return

    async def has_keys_under(self, prefix: str) -> bool:
        page = await self.page(prefix, delimiter=False, limit=1)
        return bool(page.get("Contents") or page.get("CommonPrefixes"))

    async def put(self, key: str, body: bytes, path: str, **extra: Any) -> None:
        await self.guard(path, self.call("put_object", Key=key, Body=body, **extra))

    async def delete(self, key: str, path: str) -> None:
        await self.guard(path, self.call("delete_object", Key=key))

    async def delete_keys(self, keys: list[str], path: str) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            answer = await self.guard(
                path,
                self.call(
                    "delete_objects",
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                ),
            )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(
                    errno.EIO,
                    f"{first.get('Key')}: {first.get('Message')} ({first.get('Code')})",
                    path,
                )

    async def copy(
        self,
        src_key: str,
        dst_key: str,
        size: int,
        path: str,
        replace: Replacement | None = None,
    ) -> None:
        """Server-side copy. `replace` is (metadata, content type) to set instead of
        the source's."""
        source = {"Bucket": self.client.bucket, "Key": src_key}
        cutoff = self.options.copy_cutoff
        if size < cutoff:
            extra: dict[str, Any] = {}
            if replace is not None:
                extra = {"MetadataDirective": "REPLACE", "Metadata": dict(replace[0])}
                if replace[1]:
                    extra["ContentType"] = replace[1]
            await self.guard(
                path, self.call("copy_object", Key=dst_key, CopySource=source, **extra)
            )
            return
        if replace is None:  # a multipart copy does not carry the source's metadata
            head = await self.guard(path, self.call("head_object", Key=src_key))
            replace = (head.get("Metadata") or {}, head.get("ContentType") or "")
        created: dict[str, Any] = {"Metadata": dict(replace[0])}
        if replace[1]:
            created["ContentType"] = replace[1]
        upload = await self.guard(
            path, self.call("create_multipart_upload", Key=dst_key, **created)
        )
        upload_id = upload["UploadId"]
        limit = asyncio.Semaphore(self.options.upload_concurrency)

        async def part(number: int, start: int) -> dict[str, Any]:
            async with limit:
                end = min(start + cutoff, size) - 1
                answer = await self.call(
                    "upload_part_copy",
                    Key=dst_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        try:
            parts = await self.guard(
                path,
                all_of(*(part(n, start) for n, start in enumerate(range(0, size, cutoff), 1))),
            )
            await self.guard(
                path,
                self.call(
                    "complete_multipart_upload",
                    Key=dst_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                ),
            )
        except BaseException:
            await self.abort_upload(dst_key, upload_id)
            raise

    async def abort_upload(self, key: str, upload_id: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.call("abort_multipart_upload", Key=key, UploadId=upload_id)
            except Exception as exc:
                logger.warning("{}: could not abort upload of {}: {}", self.label, key, exc)
