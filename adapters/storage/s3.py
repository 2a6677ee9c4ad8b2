"""S3 and S3-compatible servers (type `s3`), with rclone's s3 options and layout.

S3 requests (s3_client.py makes them, s3_bucket.py by key) arranged so that
directories, metadata and multipart transfers behave as rclone's s3 backend does:

- The volume's path is `bucket/prefix`; the bucket must exist (check() says so if
  not: cloudvol never creates buckets).
- Directories are key prefixes. mkdir writes a zero-byte marker object `dir/`,
  as rclone does with directory markers, so an empty directory survives listings
  and restarts; listings hide markers. Removing the last entry of a directory
  that has no marker writes one, so the directory stays (POSIX: unlink never
  removes the parent).
- Modification times are rclone's `mtime` metadata: stat() reads it (falling back
  to the object's LastModified), set_mtime() rewrites it with a server-side copy.
  Listings show LastModified: one request per `list_chunk` entries, none per
  object (rclone's VFS reads the metadata of each object, one HEAD apiece).
- Uploads stream: up to `chunk_size` is one PUT; beyond, a multipart upload starts
  and parts are sent while the file is written, `upload_concurrency` at a time.
  Abort cancels it: nothing is left behind.
- rename is a server-side copy and a delete (per object for directories); objects
  above `copy_cutoff` are copied in parts.
- Provider quirks follow rclone's: URL style (virtual-host providers override
  force_path_style) and ListObjects version.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Mapping
from typing import Any

import anyio

from adapters.storage.relpath import components
from adapters.storage.s3_bucket import S3Bucket, all_of
from adapters.storage.s3_client import S3Client
from adapters.storage.s3_options import S3Options
from adapters.storage.s3_reader import S3Reader, Schedule, call_later
from adapters.storage.s3_writer import S3Writer
from adapters.storage.storage_common import (
    CHECK_TIMEOUT,
    Found,
    Mover,
    need_parent_dir,
    to_timestamp,
    valid_name,
)
from application.ports import RemoteReader, RemoteStorage, RemoteWriter
from domain.errors import OptionError, RemoteUnavailable
from domain.metadata import FileMetadata, from_rclone_keys, to_rclone_keys
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec

_MTIME_KEY = "mtime"  # rclone's metadata key (X-Amz-Meta-Mtime), seconds as a decimal
_COPY_CONCURRENCY = 8


def build_s3_storage(spec: BackendSpec) -> RemoteStorage:
    return S3Storage(spec)


class S3Storage:
    """`RemoteStorage` on S3; the behaviour is described in the module docstring."""

    def __init__(self, spec: BackendSpec) -> None:
        self.options = S3Options.parse(spec.options)
        root = spec.root.strip("/")
        bucket, _, prefix = root.partition("/")
        if not bucket:
            raise OptionError("the s3 backend needs a bucket: -o path=bucket or bucket/dir")
        self.bucket = bucket
        self.prefix = "/".join(p for p in prefix.split("/") if p)
        self.label = f"s3 {self.options.endpoint_url or 'AWS'}"
        self.client = S3Client(self.options, bucket, spec.timeouts)
        self.objects = S3Bucket(self.client, self.options, self.label)
        # How readers close idle bodies later (tests close them by hand).
        self.schedule_idle_close: Schedule = call_later
        self._created = time.time()
        # --use-server-modtime: times are LastModified, the mtime metadata unread.
        self.use_server_modtime = False

    # keys

    def _key(self, path: str) -> str:
        parts = components(path)
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _dir_prefix(self, path: str) -> str:
        key = self._key(path)
        return f"{key}/" if key else ""

    async def _head(self, path: str) -> dict[str, Any] | None:
        return await self.objects.head(self._key(path), path)

    async def _has_keys_under(self, path: str) -> bool:
        return await self.objects.has_keys_under(self._dir_prefix(path))

    async def _need_parent_dir(self, path: str) -> None:
        await need_parent_dir(path, self._find)

    def _file_entry(self, name: str, head: Mapping[str, Any]) -> RemoteEntry:
        meta = head.get("Metadata") or {}
        mtime: float | None = None
        raw = None if self.use_server_modtime else meta.get(_MTIME_KEY)
        if raw:
            try:
                mtime = float(raw)
            except ValueError:
                mtime = None
        if mtime is None:
            mtime = to_timestamp(head.get("LastModified"))
        # Only a HEAD has user metadata; a listing's entry shows none.
        kept = from_rclone_keys({k: v for k, v in meta.items() if k != _MTIME_KEY})
        return RemoteEntry(
            name=name,
            is_dir=False,
            size=int(head.get("ContentLength", head.get("Size", 0))),
            mtime=self._created if mtime is None else mtime,
            metadata=None if "Metadata" not in head else kept.merged(FileMetadata(mtime=mtime)),
        )

    def _dir_entry(self, name: str) -> RemoteEntry:
        return RemoteEntry(name, True, 0, self._created)

    async def _find(self, path: str) -> Found:
        if not components(path):
            return Found(self._dir_entry(""))
        head, is_dir = await self.objects.guard(
            path, all_of(self._head(path), self._has_keys_under(path))
        )
        if is_dir:  # a directory and an object of one name: the directory wins
            return Found(self._dir_entry(basename(path)))
        if head is not None:
            return Found(self._file_entry(basename(path), head))
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)

    # the port

    async def _check_root(self) -> None:
        # One listing proves the endpoint, the credentials and the bucket.
        if await self._has_keys_under(""):
            return
        # Nothing under the prefix: an empty directory, unless the prefix is an object.
        if self.prefix and await self._head("") is not None:
            raise RemoteUnavailable(
                f'{self.label}: "{self.bucket}/{self.prefix}" is a file, not a directory'
            )

    async def check(self) -> None:
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await self.objects.guard("", self._check_root())
        except TimeoutError:
            raise RemoteUnavailable(f"{self.label}: no answer within {CHECK_TIMEOUT:g} s") from None
        except OSError as exc:
            # Refused listing, odd bucket names...: Create must fail with the reason.
            raise RemoteUnavailable(
                f'{self.label}: bucket "{self.bucket}": {exc.strerror or exc}'
            ) from None

    async def stat(self, path: str) -> RemoteEntry:
        return (await self._find(path)).entry

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        prefix = self._dir_prefix(path)
        files: dict[str, RemoteEntry] = {}
        dirs: dict[str, RemoteEntry] = {}
        seen = False

        async def collect() -> None:
            nonlocal seen
            async for page in self.objects.pages(prefix):
                for common in page.get("CommonPrefixes", []):
                    seen = True
                    name = str(common["Prefix"])[len(prefix) :].rstrip("/")
                    if valid_name(name):
                        dirs[name] = self._dir_entry(name)
                for item in page.get("Contents", []):
                    seen = True
                    name = str(item["Key"])[len(prefix) :]
                    if valid_name(name):  # "" is this directory's own marker
                        files[name] = self._file_entry(name, item)

        await self.objects.guard(path, collect())
        if not seen and components(path):
            if await self._head(path) is not None:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        files.update(dirs)
        return sorted(files.values(), key=lambda e: e.name)

    async def open_reader(self, path: str) -> RemoteReader:
        if not components(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        head = await self._head(path)
        if head is None:
            if await self.objects.guard(path, self._has_keys_under(path)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        return S3Reader(
            self.objects,
            self._key(path),
            path,
            int(head.get("ContentLength", 0)),
            self.schedule_idle_close,
        )

    async def _probe_new(self, path: str) -> Found | None:
        """What is at `path` (None: nothing), the parent directory checked at the
        same time: one round trip instead of two."""
        if not components(path):
            return Found(self._dir_entry(""))

        async def target() -> Found | None:
            try:
                return await self._find(path)
            except FileNotFoundError:
                return None

        results = await all_of(target(), self._need_parent_dir(path))
        found: Found | None = results[0]
        return found

    async def open_writer(self, path: str) -> RemoteWriter:
        found = await self._probe_new(path)
        if found is not None and found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return S3Writer(self.objects, self._key(path), path)

    async def mkdir(self, path: str) -> None:
        if await self._probe_new(path) is not None:
            raise FileExistsError(errno.EEXIST, "file exists", path)
        await self.objects.put(self._dir_prefix(path), b"", path)

    async def _keep_dir(self, path: str) -> None:
        """Write a marker for `path` if nothing else holds it up any more."""
        if not components(path):
            return
        if not await self.objects.guard(path, self._has_keys_under(path)):
            await self.objects.put(self._dir_prefix(path), b"", path)

    async def rmdir(self, path: str) -> None:
        if not components(path):
            raise OSError(errno.EBUSY, "the volume root cannot be removed", path)
        found = await self._find(path)
        if not found.entry.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        marker = self._dir_prefix(path)
        # Two keys suffice: the directory's own marker and anything else.
        page = await self.objects.guard(path, self.objects.page(marker, delimiter=True, limit=2))
        keys = [c["Key"] for c in page.get("Contents", [])]
        if page.get("CommonPrefixes") or any(k != marker for k in keys):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        await self.objects.delete(marker, path)
        await self._keep_dir(parent_of(path))

    async def remove(self, path: str) -> None:
        head = await self._head(path)
        if head is None:
            if components(path) and await self.objects.guard(path, self._has_keys_under(path)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        await self.objects.delete(self._key(path), path)
        await self._keep_dir(parent_of(path))

    async def rename(self, src: str, dst: str) -> None:
        await Mover(self._find, self.rmdir, self._move_file, self._move_dir).rename(src, dst)

    async def _move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        await self.objects.copy(self._key(src), self._key(dst), source.size, src)
        await self.objects.delete(self._key(src), src)
        await self._keep_dir(parent_of(src))

    async def _move_dir(self, src: str, dst: str) -> None:
        await self._move_tree(src, dst)
        await self._keep_dir(parent_of(src))

    async def _move_tree(self, src: str, dst: str) -> None:
        old, new = self._dir_prefix(src), self._dir_prefix(dst)
        objects: list[tuple[str, int]] = []

        async def collect() -> None:
            async for page in self.objects.pages(old, delimiter=False):
                objects.extend((c["Key"], int(c.get("Size", 0))) for c in page.get("Contents", []))

        await self.objects.guard(src, collect())
        limit = asyncio.Semaphore(_COPY_CONCURRENCY)

        async def copy_one(key: str, size: int) -> None:
            async with limit:
                await self.objects.copy(key, new + key[len(old) :], size, src)

        await all_of(*(copy_one(key, size) for key, size in objects))
        await self.objects.delete_keys([key for key, _ in objects], src)

    async def set_mtime(self, path: str, mtime: float) -> None:
        head = await self._head(path)
        if head is None:
            if components(path) and await self.objects.guard(path, self._has_keys_under(path)):
                return  # directories keep their times in the VFS
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        metadata = dict(head.get("Metadata") or {})
        metadata[_MTIME_KEY] = f"{mtime:.9f}"  # rclone's form: seconds, 9 decimals
        key = self._key(path)
        size = int(head.get("ContentLength", 0))
        await self.objects.copy(key, key, size, path, (metadata, head.get("ContentType") or ""))

    # SupportsMetadata

    async def set_metadata(self, path: str, metadata: FileMetadata) -> None:
        """rclone's keys as user metadata (X-Amz-Meta-Mode, -Uid, -Gid, -Atime;
        the time of -Mtime as set_mtime writes it), by a server-side copy of
        the object onto itself. Directories are prefixes: nothing to keep."""
        head = await self._head(path)
        if head is None:
            if components(path) and await self.objects.guard(path, self._has_keys_under(path)):
                return  # directories keep their metadata in the VFS
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        keys = dict(head.get("Metadata") or {})
        for key, value in to_rclone_keys(metadata).items():
            keys[key] = value
        if metadata.mode is not None:
            keys["mode"] = f"{0o100000 | (metadata.mode & 0o7777):o}"  # as rclone's local backend
        if metadata.mtime is not None:
            keys[_MTIME_KEY] = f"{metadata.mtime:.9f}"
        key = self._key(path)
        size = int(head.get("ContentLength", 0))
        await self.objects.copy(key, key, size, path, (keys, head.get("ContentType") or ""))

    async def aclose(self) -> None:
        await self.client.aclose()
