"""The s3 backend's options as the S3 adapter uses them, checked against their
declarations (domain/backends.py), with rclone's provider quirks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.storage.backend_options import check_backend_options
from domain.backends import BackendValue
from domain.errors import OptionError

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
MIN_PART = 5 * 1024 * 1024  # S3's smallest part (but the last)
_MAX_SINGLE_COPY = 5 * 1024 * 1024 * 1024  # CopyObject's limit


@dataclass(frozen=True)
class S3Options:
    """Typed view of the s3 options: each field is the declared option of its name
    (the declaration gives its default; tests/unit/test_backend_options.py keeps
    the two in step)."""

    provider: str
    env_auth: bool
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    region: str
    endpoint: str
    acl: str
    requester_pays: bool
    server_side_encryption: str
    sse_kms_key_id: str
    storage_class: str
    chunk_size: int
    max_upload_parts: int
    copy_cutoff: int
    shared_credentials_file: str
    profile: str
    upload_concurrency: int
    force_path_style: bool
    list_chunk: int
    list_version: int
    # The values of the options declared secret: never to reach a message.
    secrets: tuple[str, ...] = field(repr=False)

    @classmethod
    def parse(cls, options: Mapping[str, BackendValue]) -> S3Options:
        checked = check_backend_options("s3", options)
        # Each value has its declared type, which the field's type matches.
        parsed = cls(**checked.values, secrets=checked.secrets)  # type: ignore[arg-type]
        parsed._validate()
        return parsed

    def _validate(self) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise OptionError(
                "s3: give both access_key_id and secret_access_key, or neither "
                "(then env_auth, or anonymous access)"
            )
        if self.chunk_size < MIN_PART:
            raise OptionError("s3 option 'chunk_size' must be at least 5Mi (S3's smallest part)")
        if self.copy_cutoff < MIN_PART or self.copy_cutoff > _MAX_SINGLE_COPY:
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
        """Arguments for requests making objects (the client filters them per request)."""
        pairs = {
            "ACL": self.acl,
            "StorageClass": self.storage_class,
            "ServerSideEncryption": self.server_side_encryption,
            "SSEKMSKeyId": self.sse_kms_key_id,
        }
        return {k: v for k, v in pairs.items() if v}
