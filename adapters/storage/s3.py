"""S3 and S3-compatible servers (type `s3`), with rclone's s3 options and layout.

An `FsspecStorage` on s3fs whose operations are S3 requests made through s3fs's
client (`_call_s3`: its session, retries and error translation), written out here
rather than left to s3fs's file-system emulation, so that directories, metadata
and multipart transfers behave as rclone's s3 backend does:

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
import itertools
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from loguru import logger

from adapters.storage.fsspec_storage import (
    CHECK_TIMEOUT,
    Found,
    FsspecStorage,
    OptionValue,
    in_port_form,
    redact,
    to_timestamp,
    valid_name,
)
from adapters.storage.library_logs import cap_at_info
from adapters.storage.relpath import components
from application.ports import RemoteReader, RemoteWriter
from domain.errors import OptionError, RemoteUnavailable
from domain.paths import basename, parent_of
from domain.remote_entry import RemoteEntry
from domain.volume import BackendSpec

# Quirks of rclone's providers: those needing virtual-host style URLs (which
# override force_path_style), and those listed with ListObjects v2.
_VIRTUAL_HOST_PROVIDERS = frozenset(
    {
        "AWS",
        "Alibaba",
        "DigitalOcean",
        "Dreamhost",
        "HuaweiOBS",
        "LyveCloud",
        "Netease",
        "RackCorp",
        "Scaleway",
        "Storj",
        "TencentCOS",
        "Wasabi",
    }
)
_LIST_V2_PROVIDERS = frozenset(
    {
        "AWS",
        "Alibaba",
        "Cloudflare",
        "DigitalOcean",
        "Dreamhost",
        "IDrive",
        "IONOS",
        "LyveCloud",
        "Minio",
        "RackCorp",
        "Scaleway",
        "Storj",
        "Wasabi",
    }
)
_MIN_PART = 5 * 1024 * 1024  # S3's smallest part (but the last)
_MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024  # CopyObject's limit
_MTIME_KEY = "mtime"  # rclone's metadata key (X-Amz-Meta-Mtime), seconds as a decimal
_DELETE_BATCH = 1000
_COPY_CONCURRENCY = 8
# Streamed reads (S3Reader). A stream's first GET asks for this much, each next
# one twice as much (rclone's --vfs-read-chunk-size, without a limit).
_FIRST_WINDOW = 128 * 1024 * 1024
_MAX_SKIP = 8 * 1024 * 1024  # a read this far ahead of a body reads through the gap
_MAX_STREAMS = 4  # bodies open per reader
_IDLE_CLOSE = 5.0  # seconds before an idle body gives its connection back
_READ_STEP = 1024 * 1024  # bytes asked of a body at a time
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"})
_REDIRECT_CODES = frozenset({"PermanentRedirect", "301", "IllegalLocationConstraintException"})


def _get(options: Mapping[str, OptionValue], name: str, kind: type, default: Any) -> Any:
    value = options.get(name, default)
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise OptionError(f"s3 option {name!r} must be of type {kind.__name__}")
    return value


@dataclass(frozen=True)
class S3Options:
    """The s3 backend options (rclone's names), checked."""

    provider: str = ""
    env_auth: bool = False
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    region: str = ""
    endpoint: str = ""
    acl: str = ""
    requester_pays: bool = False
    server_side_encryption: str = ""
    sse_kms_key_id: str = ""
    storage_class: str = ""
    chunk_size: int = 5 * 1024 * 1024
    max_upload_parts: int = 10000
    copy_cutoff: int = 4999610368
    shared_credentials_file: str = ""
    profile: str = ""
    upload_concurrency: int = 4
    force_path_style: bool = True
    list_chunk: int = 1000
    list_version: int = 0

    @classmethod
    def parse(cls, options: Mapping[str, OptionValue]) -> S3Options:
        fields = cls.__dataclass_fields__
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise OptionError(
                f"unsupported s3 option {unknown[0]!r} (supported: {', '.join(sorted(fields))})"
            )
        values: dict[str, Any] = {}
        for name, spec in fields.items():
            default = spec.default
            values[name] = _get(options, name, type(default), default)
        parsed = cls(**values)
        parsed._validate()
        return parsed

    def _validate(self) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise OptionError(
                "s3: give both access_key_id and secret_access_key, or neither "
                "(then env_auth, or anonymous access)"
            )
        if self.chunk_size < _MIN_PART:
            raise OptionError("s3 option 'chunk_size' must be at least 5Mi (S3's smallest part)")
        if self.copy_cutoff < _MIN_PART or self.copy_cutoff > _MAX_SINGLE_COPY:
            raise OptionError("s3 option 'copy_cutoff' must be between 5Mi and 5Gi")
        if not 1 <= self.max_upload_parts <= 10000:
            raise OptionError("s3 option 'max_upload_parts' must be between 1 and 10000")
        if self.upload_concurrency < 1 or self.list_chunk < 1:
            raise OptionError("s3 options 'upload_concurrency' and 'list_chunk' must be positive")
        if self.list_version not in (0, 1, 2):
            raise OptionError("s3 option 'list_version' must be 0, 1 or 2")

    @property
    def endpoint_url(self) -> str | None:
        if not self.endpoint:
            return None
        return self.endpoint if "://" in self.endpoint else f"https://{self.endpoint}"

    @property
    def addressing_style(self) -> str:
        if self.provider in _VIRTUAL_HOST_PROVIDERS or not self.force_path_style:
            return "virtual"
        return "path"

    @property
    def list_v2(self) -> bool:
        if self.list_version:
            return self.list_version == 2
        return self.provider in _LIST_V2_PROVIDERS

    def put_arguments(self) -> dict[str, str]:
        """Arguments for requests making objects (s3fs filters them per request)."""
        pairs = {
            "ACL": self.acl,
            "StorageClass": self.storage_class,
            "ServerSideEncryption": self.server_side_encryption,
            "SSEKMSKeyId": self.sse_kms_key_id,
        }
        return {k: v for k, v in pairs.items() if v}

    def s3fs_arguments(self) -> dict[str, Any]:
        """The S3FileSystem constructor arguments (without session and loop ones)."""
        keys = bool(self.access_key_id)
        client_kwargs: dict[str, Any] = {}
        if self.region or self.endpoint:
            client_kwargs["region_name"] = self.region or "us-east-1"
        return {
            "anon": not keys and not self.env_auth,
            "key": self.access_key_id or None,
            "secret": self.secret_access_key or None,
            "token": self.session_token or None,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": client_kwargs,
            "config_kwargs": {
                # An unreachable endpoint fails check() in about 20 s, not minutes.
                "connect_timeout": 10,
                "read_timeout": 60,
                # A streaming reader holds a connection while its body is open:
                # botocore's 10 would leave other requests queued behind them.
                "max_pool_connections": 100,
                "retries": {"max_attempts": 2, "mode": "standard"},
                "s3": {"addressing_style": self.addressing_style},
            },
            "s3_additional_kwargs": self.put_arguments(),
            "requester_pays": self.requester_pays,
            # Without region or endpoint (AWS), find each bucket's region.
            "cache_regions": not self.region and not self.endpoint,
            "version_aware": False,
        }


async def _all(*awaitables: Awaitable[Any]) -> list[Any]:
    """Results of all of them; the first failure is raised only once every one
    has finished, so no request outlives the operation that made it."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _client_error(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) of a botocore ClientError, or of what s3fs made of one."""
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            error = response["Error"]
            code = str(error.get("Code", ""))
            message = str(error.get("Message") or "") or str(candidate)
            return code, message
    return None


def build_s3_storage(spec: BackendSpec) -> S3Storage:
    return S3Storage(spec)


class S3Storage(FsspecStorage):
    """`RemoteStorage` on S3; the behaviour is described in the module docstring."""

    def __init__(self, spec: BackendSpec) -> None:
        self.options = S3Options.parse(spec.options)
        root = spec.root.strip("/")
        bucket, _, prefix = root.partition("/")
        if not bucket:
            raise OptionError("the s3 backend needs a bucket: -o path=bucket or bucket/dir")
        self.bucket = bucket
        self.prefix = "/".join(p for p in prefix.split("/") if p)
        where = f"s3 {self.options.endpoint_url or 'AWS'}"
        super().__init__(
            self._make_s3fs,
            f"{bucket}/{self.prefix}" if self.prefix else bucket,
            label=where,
            secrets=(self.options.secret_access_key, self.options.session_token),
        )

    def _make_s3fs(self) -> Any:
        import s3fs
        from aiobotocore.session import AioSession  # type: ignore[import-untyped]

        # botocore's DEBUG lines carry whole requests, headers included (a session
        # token, SSE-C keys): they never reach cloudvol's log, even at -vv.
        cap_at_info("botocore", "aiobotocore")
        o = self.options
        session = AioSession(profile=o.profile or None)
        if o.shared_credentials_file:
            session.set_config_variable(
                "credentials_file", os.path.expanduser(o.shared_credentials_file)
            )
        fs = s3fs.S3FileSystem(
            **o.s3fs_arguments(),
            session=session,
            asynchronous=True,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        fs.retries = 3  # s3fs's own retries of dropped transfers, on top of botocore's
        return fs

    # keys

    def _key(self, path: str) -> str:
        parts = components(path)
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _dir_prefix(self, path: str) -> str:
        key = self._key(path)
        return f"{key}/" if key else ""

    # requests and their errors

    async def _call(self, method: str, **kwargs: Any) -> Any:
        fs = self.filesystem()
        return await fs._call_s3(method, Bucket=self.bucket, **kwargs)

    def _error(self, exc: BaseException, path: str) -> BaseException:
        if isinstance(exc, RemoteUnavailable | OptionError) or in_port_form(exc):
            return exc
        client = _client_error(exc)
        if client is None:
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                return RemoteUnavailable(
                    f"{self.label}: no credentials found (env_auth is on and neither "
                    "AWS_* variables nor a shared credentials file provide them)"
                )
            return super()._error(exc, path)
        code, message = client
        message = redact(message, self._secrets)
        if code in _NOT_FOUND_CODES:
            return FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        if code == "NoSuchBucket":
            return RemoteUnavailable(
                f'{self.label}: bucket "{self.bucket}" does not exist ({message})'
            )
        if code in _CREDENTIAL_CODES:
            return RemoteUnavailable(f"{self.label}: credentials refused: {message} ({code})")
        if code in _REDIRECT_CODES:
            return RemoteUnavailable(
                f'{self.label}: bucket "{self.bucket}" is in another region; '
                f"set s3-region ({message})"
            )
        if code in _DENIED_CODES:
            return PermissionError(errno.EACCES, f"{message} ({code})", path)
        if code in ("SlowDown", "503", "ServiceUnavailable"):
            return OSError(errno.EAGAIN, f"{message} ({code})", path)
        if code in ("EntityTooLarge", "EntityTooSmall"):
            return OSError(errno.EFBIG, f"{message} ({code})", path)
        return OSError(errno.EIO, f"{message} ({code})", path)

    async def _head(self, path: str) -> dict[str, Any] | None:
        """The object's HEAD answer, or None if there is no such object."""
        key = self._key(path)
        if not key:
            return None
        try:
            head: dict[str, Any] = await self._call("head_object", Key=key)
        except Exception as exc:
            mapped = self._error(exc, path)
            if isinstance(mapped, FileNotFoundError):
                return None
            raise mapped from None
        return head

    async def _page(
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
            page: dict[str, Any] = await self._call("list_objects_v2", **args)
        else:
            if after:
                args["Marker"] = after
            page = await self._call("list_objects", **args)
        return page

    async def _pages(self, prefix: str, *, delimiter: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every listing page of keys under `prefix` (iterate to the end)."""
        after = ""
        while True:
            page = await self._page(prefix, delimiter=delimiter, after=after)
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

    async def _has_keys_under(self, path: str) -> bool:
        page = await self._page(self._dir_prefix(path), delimiter=False, limit=1)
        return bool(page.get("Contents") or page.get("CommonPrefixes"))

    def _file_entry(self, name: str, head: Mapping[str, Any]) -> RemoteEntry:
        meta = head.get("Metadata") or {}
        mtime: float | None = None
        raw = meta.get(_MTIME_KEY)
        if raw:
            try:
                mtime = float(raw)
            except ValueError:
                mtime = None
        if mtime is None:
            mtime = to_timestamp(head.get("LastModified"))
        return RemoteEntry(
            name=name,
            is_dir=False,
            size=int(head.get("ContentLength", head.get("Size", 0))),
            mtime=self._created if mtime is None else mtime,
        )

    def _dir_entry(self, name: str) -> RemoteEntry:
        return RemoteEntry(name, True, 0, self._created)

    async def _find(self, path: str) -> Found:
        if not components(path):
            return Found(self._dir_entry(""))
        head, is_dir = await self._guard(path, _all(self._head(path), self._has_keys_under(path)))
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
                await self._guard("", self._check_root())
        except TimeoutError:
            raise RemoteUnavailable(f"{self.label}: no answer within {CHECK_TIMEOUT:g} s") from None
        except OSError as exc:
            # Refused listing, odd bucket names...: Create must fail with the reason.
            raise RemoteUnavailable(
                f'{self.label}: bucket "{self.bucket}": {exc.strerror or exc}'
            ) from None

    async def list_dir(self, path: str) -> list[RemoteEntry]:
        prefix = self._dir_prefix(path)
        files: dict[str, RemoteEntry] = {}
        dirs: dict[str, RemoteEntry] = {}
        seen = False

        async def collect() -> None:
            nonlocal seen
            async for page in self._pages(prefix):
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

        await self._guard(path, collect())
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
            if await self._guard(path, self._has_keys_under(path)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        return S3Reader(self, path, int(head.get("ContentLength", 0)))

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

        results = await _all(target(), self._need_parent_dir(path))
        found: Found | None = results[0]
        return found

    async def open_writer(self, path: str) -> RemoteWriter:
        found = await self._probe_new(path)
        if found is not None and found.entry.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return S3Writer(self, path)

    async def _put(self, key: str, body: bytes, path: str, **extra: Any) -> None:
        await self._guard(path, self._call("put_object", Key=key, Body=body, **extra))

    async def mkdir(self, path: str) -> None:
        if await self._probe_new(path) is not None:
            raise FileExistsError(errno.EEXIST, "file exists", path)
        await self._put(self._dir_prefix(path), b"", path)

    async def _keep_dir(self, path: str) -> None:
        """Write a marker for `path` if nothing else holds it up any more."""
        if not components(path):
            return
        if not await self._guard(path, self._has_keys_under(path)):
            await self._put(self._dir_prefix(path), b"", path)

    async def rmdir(self, path: str) -> None:
        if not components(path):
            raise OSError(errno.EBUSY, "the volume root cannot be removed", path)
        found = await self._find(path)
        if not found.entry.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        marker = self._dir_prefix(path)
        # Two keys suffice: the directory's own marker and anything else.
        page = await self._guard(path, self._page(marker, delimiter=True, limit=2))
        keys = [c["Key"] for c in page.get("Contents", [])]
        if page.get("CommonPrefixes") or any(k != marker for k in keys):
            raise OSError(errno.ENOTEMPTY, "directory not empty", path)
        await self._guard(path, self._call("delete_object", Key=marker))
        await self._keep_dir(parent_of(path))

    async def remove(self, path: str) -> None:
        head = await self._head(path)
        if head is None:
            if components(path) and await self._guard(path, self._has_keys_under(path)):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        await self._guard(path, self._call("delete_object", Key=self._key(path)))
        await self._keep_dir(parent_of(path))

    async def _copy(
        self,
        src_key: str,
        dst_key: str,
        size: int,
        path: str,
        replace: tuple[Mapping[str, str], str] | None = None,
    ) -> None:
        """Server-side copy. `replace` is (metadata, content type) to set instead of
        the source's."""
        source = {"Bucket": self.bucket, "Key": src_key}
        cutoff = self.options.copy_cutoff
        if size < cutoff:
            extra: dict[str, Any] = {}
            if replace is not None:
                extra = {"MetadataDirective": "REPLACE", "Metadata": dict(replace[0])}
                if replace[1]:
                    extra["ContentType"] = replace[1]
            await self._guard(
                path, self._call("copy_object", Key=dst_key, CopySource=source, **extra)
            )
            return
        if replace is None:  # a multipart copy does not carry the source's metadata
            head = await self._guard(path, self._call("head_object", Key=src_key))
            replace = (head.get("Metadata") or {}, head.get("ContentType") or "")
        created: dict[str, Any] = {"Metadata": dict(replace[0])}
        if replace[1]:
            created["ContentType"] = replace[1]
        upload = await self._guard(
            path, self._call("create_multipart_upload", Key=dst_key, **created)
        )
        upload_id = upload["UploadId"]
        limit = asyncio.Semaphore(self.options.upload_concurrency)

        async def part(number: int, start: int) -> dict[str, Any]:
            async with limit:
                end = min(start + cutoff, size) - 1
                answer = await self._call(
                    "upload_part_copy",
                    Key=dst_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        try:
            parts = await self._guard(
                path,
                _all(*(part(n, start) for n, start in enumerate(range(0, size, cutoff), 1))),
            )
            await self._guard(
                path,
                self._call(
                    "complete_multipart_upload",
                    Key=dst_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                ),
            )
        except BaseException:
            await self._abort_upload(dst_key, upload_id)
            raise

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            except Exception as exc:
                logger.warning("{}: could not abort upload of {}: {}", self.label, key, exc)

    async def _delete_keys(self, keys: list[str], path: str) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            answer = await self._guard(
                path,
                self._call(
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

    async def _move_file(self, src: str, dst: str, source: RemoteEntry) -> None:
        await self._copy(self._key(src), self._key(dst), source.size, src)
        await self._guard(src, self._call("delete_object", Key=self._key(src)))
        await self._keep_dir(parent_of(src))

    async def _move_dir(self, src: str, dst: str) -> None:
        await self._move_tree(src, dst)
        await self._keep_dir(parent_of(src))

    async def _move_tree(self, src: str, dst: str) -> None:
        old, new = self._dir_prefix(src), self._dir_prefix(dst)
        objects: list[tuple[str, int]] = []

        async def collect() -> None:
            async for page in self._pages(old, delimiter=False):
                objects.extend((c["Key"], int(c.get("Size", 0))) for c in page.get("Contents", []))

        await self._guard(src, collect())
        limit = asyncio.Semaphore(_COPY_CONCURRENCY)

        async def copy_one(key: str, size: int) -> None:
            async with limit:
                await self._copy(key, new + key[len(old) :], size, src)

        await _all(*(copy_one(key, size) for key, size in objects))
        await self._delete_keys([key for key, _ in objects], src)

    async def set_mtime(self, path: str, mtime: float) -> None:
        head = await self._head(path)
        if head is None:
            if components(path) and await self._guard(path, self._has_keys_under(path)):
                return  # directories keep their times in the VFS
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        metadata = dict(head.get("Metadata") or {})
        metadata[_MTIME_KEY] = f"{mtime:.9f}"  # rclone's form: seconds, 9 decimals
        key = self._key(path)
        size = int(head.get("ContentLength", 0))
        await self._copy(key, key, size, path, (metadata, head.get("ContentType") or ""))

    async def aclose(self) -> None:
        fs, self._fs = self._fs, None
        creator = getattr(fs, "_s3creator", None)
        if creator is not None and getattr(fs, "_s3", None) is not None:
            with anyio.CancelScope(shield=True):
                await creator.__aexit__(None, None, None)


class _Stream:
    """One GET's body, read in order: the object's bytes [pos, end) are still to come."""

    def __init__(self, pos: int) -> None:
        self.body: Any = None  # aiobotocore's StreamingBody
        self.pos = pos
        self.end = pos
        self.window = _FIRST_WINDOW
        self.lock = asyncio.Lock()  # one read at a time: the body is read in order
        self.claims: list[int] = []  # ends of the reads queued on it
        self.idle: asyncio.TimerHandle | None = None
        self.used = 0  # when a read last joined it

    @property
    def next(self) -> int:
        """Where it will stand once the reads queued on it are served."""
        return max(self.pos, *self.claims) if self.claims else self.pos

    def continues_at(self, pos: int) -> bool:
        return self.pos <= pos <= self.pos + _MAX_SKIP

    def drop(self) -> None:
        body, self.body = self.body, None
        if body is not None:
            body.close()  # unread: the connection is closed, not pooled


class S3Reader:
    """Streams, as rclone's chunked reader does: a GET's body stays open and serves
    the reads that follow on from where it stands, instead of one ranged GET per
    read (a round trip apiece, and some servers pay per request, moto by slicing
    the whole object). A GET asks for `_FIRST_WINDOW`, the next one of a stream
    twice as much, and so on.

    Reads arrive several at a time (the VFS reads ahead); each joins the stream it
    continues and waits its turn there. A read behind every stream, or far ahead,
    starts a new one; a few are kept, so that readers sharing this one (the
    cache's handles) do not take turns reopening a single body, and an idle body
    soon gives its connection back to the pool."""

    def __init__(self, storage: S3Storage, path: str, size: int) -> None:
        self._storage, self._path, self._size = storage, path, size
        self._key = storage._key(path)
        self._streams: list[_Stream] = []
        self._ticks = itertools.count()
        self._closed = False

    async def read(self, offset: int, size: int) -> bytes:
        if self._closed:
            raise ValueError("read on a closed file")
        if size <= 0 or offset < 0 or offset >= self._size:
            return b""
        end = min(offset + size, self._size)
        stream = self._join(offset, end)
        try:
            async with stream.lock:
                return await self._serve(stream, offset, end)
        finally:
            self._leave(stream, end)

    async def close(self) -> None:
        self._closed = True
        for stream in list(self._streams):
            self._retire(stream)

    def _join(self, offset: int, end: int) -> _Stream:
        """The stream the read at `offset` continues (a new one if none), the read
        queued on it. No await: reads join in the order they were made."""
        near = [s for s in self._streams if s.next <= offset <= s.next + _MAX_SKIP]
        if near:
            stream = max(near, key=lambda s: s.next)
        else:
            if len(self._streams) >= _MAX_STREAMS:
                # The least recently used, an idle one first.
                self._retire(min(self._streams, key=lambda s: (bool(s.claims), s.used)))
            stream = _Stream(offset)
            self._streams.append(stream)
        if stream.idle is not None:
            stream.idle.cancel()
            stream.idle = None
        stream.used = next(self._ticks)
        stream.claims.append(end)
        return stream

    def _leave(self, stream: _Stream, end: int) -> None:
        stream.claims.remove(end)
        if stream.claims:
            return
        if stream.body is None or stream not in self._streams:
            self._retire(stream)  # failed, cancelled, or retired while busy
        elif not self._closed:
            loop = asyncio.get_running_loop()
            stream.idle = loop.call_later(_IDLE_CLOSE, self._retire, stream)

    def _retire(self, stream: _Stream) -> None:
        """Forget the stream; its body is closed now, or by the last read queued."""
        if stream in self._streams:
            self._streams.remove(stream)
        if stream.idle is not None:
            stream.idle.cancel()
            stream.idle = None
        if not stream.claims:
            stream.drop()

    async def _serve(self, stream: _Stream, offset: int, end: int) -> bytes:
        out = bytearray()
        retried = False
        while offset + len(out) < min(end, self._size):
            if self._closed:
                raise ValueError("read on a closed file")
            pos = offset + len(out)
            reading = False
            try:
                if stream.body is None or not stream.continues_at(pos) or pos >= stream.end:
                    await self._open(stream, pos)
                    continue  # the object may have turned out shorter
                reading = True
                await self._take(stream, pos - stream.pos, None)
                await self._take(stream, min(end, stream.end) - pos, out)
            except Exception as exc:
                stream.drop()
                mapped = self._storage._error(exc, self._path)
                # A body cut short (a reset, a timeout, a server closing idle
                # connections) is opened again where it stopped, once; a failed
                # request only if it was the connection (s3fs retried it already).
                if retried or not (reading or isinstance(mapped, RemoteUnavailable)):
                    raise mapped from None
                retried = True
                logger.debug(
                    "{}: reading {} again after {}", self._storage.label, self._path, mapped
                )
            except BaseException:
                stream.drop()  # cancelled mid-body: where it stands is unknown
                raise
        return bytes(out)

    async def _open(self, stream: _Stream, pos: int) -> None:
        if stream.body is not None:
            # Past the window: the next one is twice as large; elsewhere: a seek.
            following = stream.continues_at(pos) and pos >= stream.end
            stream.window = stream.window * 2 if following else _FIRST_WINDOW
            stream.drop()
        stop = min(pos + stream.window, self._size)
        response = await self._storage._call(
            "get_object", Key=self._key, Range=f"bytes={pos}-{stop - 1}"
        )
        stream.body = response["Body"]
        stream.pos = pos
        stream.end = pos + int(response.get("ContentLength", stop - pos))
        if stream.end < stop:
            self._size = stream.end  # the object is shorter now: reads end there

    async def _take(self, stream: _Stream, count: int, out: bytearray | None) -> None:
        """The body's next `count` bytes, added to `out` (None: dropped)."""
        while count > 0:
            chunk = await stream.body.read(min(count, _READ_STEP))
            if not chunk:  # no error, yet short of the range
                raise OSError(errno.EIO, "the object's body ended early", self._path)
            stream.pos += len(chunk)
            count -= len(chunk)
            if out is not None:
                out += chunk


class S3Writer:
    """Streams an upload: one PUT up to `chunk_size`, else a multipart upload whose
    parts go out while the file is written (see S3Storage)."""

    def __init__(self, storage: S3Storage, path: str) -> None:
        self._storage, self._path = storage, path
        self._key = storage._key(path)
        self._part_size = storage.options.chunk_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(storage.options.upload_concurrency)
        self._failure: BaseException | None = None
        self._next_part = 1
        self._done = False
        content_type, _ = mimetypes.guess_type(basename(path))
        self._content_type = content_type or "application/octet-stream"

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._storage._error(self._failure, self._path)

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
        s = self._storage
        if self._upload_id is None:
            upload = await s._guard(
                self._path,
                s._call("create_multipart_upload", Key=self._key, ContentType=self._content_type),
            )
            self._upload_id = str(upload["UploadId"])
        number = self._next_part
        if number > s.options.max_upload_parts:
            raise OSError(
                errno.EFBIG,
                f"file larger than {s.options.max_upload_parts} parts of "
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
            answer = await self._storage._call(
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
        s = self._storage
        try:
            if self._upload_id is None:
                await s._put(
                    self._key, bytes(self._buffer), self._path, ContentType=self._content_type
                )
            else:
                await self._send(bytes(self._buffer))
                if self._pending:
                    await asyncio.gather(*self._pending)
                self._raise_failure()
                parts = sorted(self._parts, key=lambda p: int(p["PartNumber"]))
                await s._guard(
                    self._path,
                    s._call(
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
            await self._storage._abort_upload(self._key, upload_id)
