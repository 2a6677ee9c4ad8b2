"""The volume model: what Docker asked for, parsed into typed specs."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class CacheMode(enum.Enum):
    OFF = "off"
    MINIMAL = "minimal"
    WRITES = "writes"
    FULL = "full"


UNLIMITED = -1  # sizes given as "off"


@dataclass(frozen=True)
class MountOptions:
    """FUSE-level options (rclone's mountlib options)."""

    allow_non_empty: bool = False
    allow_other: bool = False
    allow_root: bool = False
    async_read: bool = True
    attr_timeout: float = 1.0
    daemon_timeout: float = 0.0
    debug_fuse: bool = False
    default_permissions: bool = False
    devname: str = ""
    fuse_flags: tuple[str, ...] = ()
    max_read_ahead: int = 128 * 1024
    write_back_cache: bool = False
    case_insensitive: bool | None = None  # --mount-case-insensitive; None lets the remote decide
    extra_options: tuple[str, ...] = ()  # -o/--option values for libfuse
    direct_io: bool = False  # --direct-io: the kernel caches no file data
    # Windows/macOS-only flags: accepted, kept, and without effect on Linux.
    network_mode: bool = False
    noappledouble: bool = True
    noapplexattr: bool = False
    volname: str = ""


@dataclass(frozen=True)
class FilterOptions:
    """rclone's filter flags, as given (rules are parsed by domain.filters)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    filter: tuple[str, ...] = ()
    filter_from: tuple[str, ...] = ()
    include_from: tuple[str, ...] = ()
    exclude_from: tuple[str, ...] = ()
    files_from: tuple[str, ...] = ()
    files_from_raw: tuple[str, ...] = ()
    min_size: int = UNLIMITED
    max_size: int = UNLIMITED
    min_age: float = math.inf  # "off"
    max_age: float = math.inf
    max_depth: int = -1
    exclude_if_present: tuple[str, ...] = ()
    ignore_case: bool = False
    hash_filter: str = ""
    delete_excluded: bool = False


@dataclass(frozen=True)
class VfsOptions:
    """VFS options (rclone's vfscommon options, plus the per-volume globals)."""

    no_seek: bool = False
    no_checksum: bool = False
    read_only: bool = False
    no_modtime: bool = False
    dir_cache_time: float = 300.0
    poll_interval: float = 60.0
    umask: int = 0o022
    uid: int = 0
    gid: int = 0
    dir_perms: int = 0o777
    file_perms: int = 0o666
    cache_mode: CacheMode = CacheMode.OFF
    cache_max_age: float = 3600.0
    cache_max_size: int = UNLIMITED
    cache_poll_interval: float = 60.0
    case_insensitive: bool = False
    write_wait: float = 1.0
    read_wait: float = 0.020
    write_back: float = 5.0
    read_chunk_size: int = 128 * 1024 * 1024
    read_chunk_size_limit: int = UNLIMITED
    read_ahead: int = 0
    used_is_size: bool = False
    fast_fingerprint: bool = False
    disk_space_total_size: int = UNLIMITED
    buffer_size: int = 16 * 1024 * 1024
    transfers: int = 4
    # Issue 11 §1 and §3: symlinks as .rclonelink files, and POSIX metadata.
    links: bool = False
    link_perms: int = 0o777
    metadata: bool = False
    metadata_extension: str = ""
    # Added with rclone 1.75's VFS flags and the remaining global flags.
    checkers: int = 8
    use_server_modtime: bool = False
    log_format: str = "date,time"
    read_chunk_streams: int = 0
    cache_min_free_space: int = UNLIMITED
    refresh: bool = False
    block_norm_dupes: bool = False
    handle_caching: float = 5.0  # rclone 1.75's --vfs-handle-caching
    filters: FilterOptions = field(default_factory=lambda: FilterOptions())
    # Issue 12: rclone's --timeout and --contimeout (copied into BackendSpec.timeouts).
    io_timeout: float = 300.0
    connect_timeout: float = 60.0


@dataclass(frozen=True)
class Timeouts:
    """rclone's --contimeout and --timeout as a backend applies them to its
    connections; 0 or infinity (`off`) means no limit."""

    connect: float = 60.0
    io_idle: float = 300.0

    @staticmethod
    def limit(seconds: float) -> float | None:
        """`seconds` as a timeout to pass on: None for no limit."""
        return seconds if 0 < seconds < float("inf") else None


@dataclass(frozen=True)
class BackendSpec:
    """Where a volume's data lives.

    `type` is the backend ("sftp", "local", ...); `root` is the path on the remote
    that the volume shows; `options` are the backend's own options by their rclone
    names without the type prefix ("host", "port", "key_file"...), values already
    checked and typed.
    """

    type: str
    root: str
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    timeouts: Timeouts = Timeouts()


@dataclass(frozen=True)
class VolumeSpec:
    backend: BackendSpec
    mount: MountOptions = MountOptions()
    vfs: VfsOptions = VfsOptions()


@dataclass
class Volume:
    """A Docker volume as the plugin keeps it.

    `options` are the raw `-o` options Docker sent; they are what the state file
    keeps, and `spec` is re-derived from them (with the daemon's flags) on restore.
    `fs`, `type` and `path` mirror rclone's state-file fields.
    """

    name: str
    mountpoint: str
    created_at: datetime
    options: dict[str, str]
    spec: VolumeSpec
    fs: str = ""
    type: str = ""
    path: str = ""
    mount_ids: list[str] = field(default_factory=list)

    @property
    def is_mounted(self) -> bool:
        return bool(self.mount_ids)
