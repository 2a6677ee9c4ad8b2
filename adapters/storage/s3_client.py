"""The one place that talks to s3fs and botocore: building the client from the
s3 options, making S3 requests through it, reading its errors, closing it.

Requests go through s3fs's client (`_call_s3`: its session, retries and error
translation) rather than its file-system emulation, which the S3 adapter replaces
with rclone's layout. `_call_s3` is private to s3fs; it is used here only.
"""

from __future__ import annotations

import os
from typing import Any

import anyio

from adapters.storage.library_logs import cap_at_info
from adapters.storage.s3_options import S3Options
from domain.volume import Timeouts


def s3fs_arguments(options: S3Options, timeouts: Timeouts | None = None) -> dict[str, Any]:
    """The S3FileSystem constructor arguments (without session and loop ones);
    `timeouts` are rclone's --contimeout and --timeout (default: rclone's)."""
    o, limits = options, timeouts or Timeouts()
    keys = bool(o.access_key_id)
    client_kwargs: dict[str, Any] = {}
    if o.region or o.endpoint:
        client_kwargs["region_name"] = o.region or "us-east-1"
    return {
        "anon": not keys and not o.env_auth,
        "key": o.access_key_id or None,
        "secret": o.secret_access_key or None,
        "token": o.session_token or None,
        "endpoint_url": o.endpoint_url,
        "client_kwargs": client_kwargs,
        "config_kwargs": {
            # botocore's connect and read timeouts are rclone's --contimeout and
            # --timeout (a read waits at most this long for the next bytes); check()
            # is bounded on its own (s3.CHECK_TIMEOUT).
            "connect_timeout": Timeouts.limit(limits.connect),
            "read_timeout": Timeouts.limit(limits.io_idle),
            # A streaming reader holds a connection while its body is open:
            # botocore's 10 would leave other requests queued behind them.
            "max_pool_connections": 100,
            "retries": {"max_attempts": 2, "mode": "standard"},
            "s3": {"addressing_style": o.addressing_style},
        },
        "s3_additional_kwargs": o.put_arguments(),
        "requester_pays": o.requester_pays,
        # Without region or endpoint (AWS), find each bucket's region.
        "cache_regions": not o.region and not o.endpoint,
        "version_aware": False,
    }


def client_error(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) of a botocore ClientError, or of what s3fs made of one."""
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            error = response["Error"]
            code = str(error.get("Code", ""))
            message = str(error.get("Message") or "") or str(candidate)
            return code, message
    return None


def is_missing_credentials(exc: BaseException) -> bool:
    """botocore found no credentials (env_auth, and nothing provides them)."""
    return type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError")


class S3Client:
    """Requests to one bucket. The s3fs client is built on first use, inside the
    running event loop, because its aiobotocore session belongs to one loop."""

    def __init__(self, options: S3Options, bucket: str, timeouts: Timeouts | None = None) -> None:
        self._options, self.bucket = options, bucket
        self._timeouts = timeouts
        self._fs: Any = None

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = self._make_s3fs()
        return self._fs

    def _make_s3fs(self) -> Any:
        import s3fs
        from aiobotocore.session import AioSession  # type: ignore[import-untyped]

        # botocore's DEBUG lines carry whole requests, headers included (a session
        # token, SSE-C keys): they never reach cloudvol's log, even at -vv.
        cap_at_info("botocore", "aiobotocore")
        o = self._options
        session = AioSession(profile=o.profile or None)
        if o.shared_credentials_file:
            session.set_config_variable(
                "credentials_file", os.path.expanduser(o.shared_credentials_file)
            )
        fs = s3fs.S3FileSystem(
            **s3fs_arguments(o, self._timeouts),
            session=session,
            asynchronous=True,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        fs.retries = 3  # s3fs's own retries of dropped transfers, on top of botocore's
        return fs

    async def call(self, method: str, **kwargs: Any) -> Any:
        """The answer to S3 request `method` (botocore's name) on the bucket."""
        return await self._filesystem()._call_s3(method, Bucket=self.bucket, **kwargs)

    async def aclose(self) -> None:
        fs, self._fs = self._fs, None
        creator = getattr(fs, "_s3creator", None)
        if creator is not None and getattr(fs, "_s3", None) is not None:
            with anyio.CancelScope(shield=True):
                await creator.__aexit__(None, None, None)
