"""The one option registry: every mount, VFS and per-volume global option.

Each option is declared once here; the same declaration drives the command-line
flags (entrypoints/flags.py), `-o key=value` parsing (domain/volume_options.py),
the state file and `--help`. Names, types and defaults are rclone's.

An option that is declared but not implemented is refused when given, never
silently ignored. To implement one, drop its `support=` argument (or widen
`supported_choices`): nothing else changes.

Defaults that depend on the process (uid, gid, umask) are placeholders here. The
entrypoint passes the real ones as raw strings in `defaults` to
`parse_volume_options` (and they are overridden by any explicit flag or `-o`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.errors import OptionError
from domain.filters import check_filter_options
from domain.log_format import check_log_format
from domain.values import DURATION_OFF, OptionValue, ValueType
from domain.volume import UNLIMITED, CacheMode, MountOptions, VfsOptions

SUPPORTED = "supported"
NOT_YET = "not supported yet"
ONLY_WINDOWS = "only meaningful on Windows, not supported"
ONLY_MACOS = "only meaningful on macOS, not supported"
ONLY_WINDOWS_MACOS = "only meaningful on Windows and macOS, not supported"
NOT_FOR_PLUGIN = "meaningless for a volume plugin (each volume's mount is run by the daemon)"
NO_IDMAP = (
    "not supported: id-mapped FUSE mounts need libfuse 3.17 or newer (FUSE_ALLOW_IDMAP), "
    "and this build has libfuse 3.14 (Debian 12) through pyfuse3, which has no way to ask for it"
)
NO_METADATA = (
    "not supported yet: the listings cloudvol reads carry no object metadata "
    "(SFTP has none; S3 user metadata is only read per file)"
)

# Reasons an accepted option does nothing here; logged once at INFO when given.
NO_EFFECT_ON_LINUX = "rclone accepts it on Linux, where it has no effect"
NO_CHANGE_NOTIFY = (
    "SFTP and S3 cannot report changes, so there is nothing to poll; "
    "listings are refreshed after dir-cache-time (or SIGHUP)"
)
NO_DAEMON_TIMEOUT = (
    "Linux's FUSE has no per-request time limit to set (rclone passes it on macOS only)"
)
NO_VFS_CHECKERS = "rclone's VFS does not use checkers (only --transfers, for uploads)"
NO_SYNC = "it only matters to sync, which a volume never does"


class OptionKind(enum.Enum):
    MOUNT = "mount"  # a MountOptions field
    VFS = "vfs"  # a VfsOptions field
    GLOBAL = "global"  # a process-wide flag in rclone, settable per volume here (VfsOptions)
    FILTER = "filter"  # a filter flag (VfsOptions.filters)


@dataclass(frozen=True)
class OptionDecl:
    name: str  # dashed, as rclone spells the flag
    kind: OptionKind
    field: str | None  # target field; None for options that can never be accepted
    type: ValueType
    default: OptionValue
    help: str
    support: str = SUPPORTED  # or the reason the option is refused
    supported_choices: tuple[str, ...] | None = None  # enums: the values accepted so far
    short: str | None = None  # one-letter flag alias
    no_effect: str = ""  # accepted, but does nothing here: why (logged once at INFO)

    @property
    def is_supported(self) -> bool:
        return self.support == SUPPORTED

    def parse(self, raw: str) -> OptionValue:
        """The typed value of `raw`, or OptionError if malformed or not accepted."""
        if not self.is_supported:
            raise OptionError(f"{self.name}: {self.support}")
        value = self.type.parse(self.name, raw)
        if self.supported_choices is not None:
            text = self.type.format(value)
            if text not in self.supported_choices:
                raise OptionError(
                    f'{self.name}: "{text}" is {NOT_YET} '
                    f"(supported: {', '.join(self.supported_choices)})"
                )
        return value

    def format_default(self) -> str:
        return self.type.format(self.default)


_M, _V, _G, _F = OptionKind.MOUNT, OptionKind.VFS, OptionKind.GLOBAL, OptionKind.FILTER
_B, _D, _S = ValueType.BOOL, ValueType.DURATION, ValueType.SIZE
_MODE, _STR, _LIST = ValueType.MODE, ValueType.STRING, ValueType.STRING_LIST


OPTIONS: tuple[OptionDecl, ...] = (
    # --- mount (FUSE) options ---
    OptionDecl("allow-non-empty", _M, "allow_non_empty", _B, False,
               "Mount even if the mountpoint directory is not empty"),
    OptionDecl("allow-other", _M, "allow_other", _B, False,
               "Let users other than the mounting one access the mount"),
    OptionDecl("allow-root", _M, "allow_root", _B, False,
               "Let root access the mount as well as the mounting user"),
    # pyfuse3 always reads asynchronously: only the default can be honoured.
    OptionDecl("async-read", _M, "async_read", _B, True,
               "Let the kernel issue reads asynchronously", supported_choices=("true",)),
    OptionDecl("attr-timeout", _M, "attr_timeout", _D, 1.0,
               "How long the kernel may cache file and directory attributes"),
    OptionDecl("daemon", _M, None, _B, False,
               "Detach the mount into the background", support=NOT_FOR_PLUGIN),
    OptionDecl("daemon-timeout", _M, "daemon_timeout", _D, 0.0,
               "Time limit for answering a kernel request (0 = the kernel's default)",
               no_effect=NO_DAEMON_TIMEOUT),
    OptionDecl("daemon-wait", _M, None, _D, 60.0,
               "How long to wait for a backgrounded mount to be ready",
               support=NOT_FOR_PLUGIN),
    OptionDecl("debug-fuse", _M, "debug_fuse", _B, False,
               "Log every FUSE request (needs verbose logging)"),
    OptionDecl("default-permissions", _M, "default_permissions", _B, False,
               "Have the kernel check access against the file modes"),
    OptionDecl("devname", _M, "devname", _STR, "",
               "Device name shown in the mount table (default: remote:path)"),
    OptionDecl("fuse-flag", _M, "fuse_flags", _LIST, (),
               "Flag or argument passed straight to libfuse (repeatable)"),
    OptionDecl("max-read-ahead", _M, "max_read_ahead", _S, 128 * 1024,
               "Most bytes the kernel may prefetch for sequential reads"),
    OptionDecl("mount-case-insensitive", _M, "case_insensitive", ValueType.TRISTATE, None,
               "Tell the OS the mount is case insensitive (true) or sensitive (false) "
               "instead of asking the remote", no_effect=NO_EFFECT_ON_LINUX),
    OptionDecl("network-mode", _M, "network_mode", _B, False,
               "Mount as a network drive (Windows only)", no_effect=NO_EFFECT_ON_LINUX),
    OptionDecl("noappledouble", _M, "noappledouble", _B, True,
               "Hide Apple Double (._) and .DS_Store files (macOS only)",
               no_effect=NO_EFFECT_ON_LINUX),
    OptionDecl("noapplexattr", _M, "noapplexattr", _B, False,
               'Hide "com.apple.*" extended attributes (macOS only)',
               no_effect=NO_EFFECT_ON_LINUX),
    OptionDecl("option", _M, "extra_options", _LIST, (),
               "Mount option passed to libfuse, as after mount -o (repeatable)", short="o"),
    OptionDecl("volname", _M, "volname", _STR, "",
               "Volume label shown by the OS (Windows and macOS only)",
               no_effect=NO_EFFECT_ON_LINUX),
    OptionDecl("write-back-cache", _M, "write_back_cache", _B, False,
               "Let the kernel buffer writes instead of writing through"),
    # --- VFS options ---
    OptionDecl("dir-cache-time", _V, "dir_cache_time", _D, 300.0,
               "How long a directory listing stays fresh"),
    OptionDecl("dir-perms", _V, "dir_perms", _MODE, 0o777, "Permission bits of directories"),
    OptionDecl("file-perms", _V, "file_perms", _MODE, 0o666, "Permission bits of files"),
    OptionDecl("gid", _V, "gid", ValueType.UINT32, 0,
               "Group owning every file (default: the daemon's gid)"),
    OptionDecl("no-checksum", _V, "no_checksum", _B, False,
               "Skip checksum comparison on upload and download"),
    OptionDecl("no-modtime", _V, "no_modtime", _B, False,
               "Neither read nor set modification times"),
    OptionDecl("no-seek", _V, "no_seek", _B, False, "Refuse seeking in open files"),
    OptionDecl("poll-interval", _V, "poll_interval", _D, 60.0,
               "How often to ask the remote for changes (0 = never); "
               "must be below dir-cache-time", no_effect=NO_CHANGE_NOTIFY),
    OptionDecl("read-only", _V, "read_only", _B, False, "Refuse every change to the volume"),
    OptionDecl("uid", _V, "uid", ValueType.UINT32, 0,
               "User owning every file (default: the daemon's uid)"),
    OptionDecl("umask", _V, "umask", _MODE, 0o022,
               "Permission bits removed from files and directories "
               "(default: the daemon's umask)"),
    OptionDecl("vfs-cache-max-age", _V, "cache_max_age", _D, 3600.0,
               "Drop cached files unused for longer than this"),
    OptionDecl("vfs-cache-max-size", _V, "cache_max_size", _S, UNLIMITED,
               "Evict least recently used cached files above this total"),
    OptionDecl("vfs-cache-mode", _V, "cache_mode", ValueType.CACHE_MODE, CacheMode.OFF,
               "What the local file cache holds: off|minimal|writes|full"),
    OptionDecl("vfs-cache-poll-interval", _V, "cache_poll_interval", _D, 60.0,
               "How often to look for cached files to evict"),
    OptionDecl("vfs-case-insensitive", _V, "case_insensitive", _B, False,
               "Fall back to a case-insensitive match when a name is not found"),
    OptionDecl("vfs-disk-space-total-size", _V, "disk_space_total_size", _S, UNLIMITED,
               "Total disk size reported to df (off = ask the remote)"),
    OptionDecl("vfs-fast-fingerprint", _V, "fast_fingerprint", _B, False,
               "Detect remote changes by cheaper, less exact fingerprints"),
    OptionDecl("vfs-read-ahead", _V, "read_ahead", _S, 0,
               "Read this much beyond buffer-size in cache mode full"),
    OptionDecl("vfs-read-chunk-size", _V, "read_chunk_size", _S, 128 * 1024 * 1024,
               "Size of the first ranged read of a file"),
    OptionDecl("vfs-read-chunk-size-limit", _V, "read_chunk_size_limit", _S, UNLIMITED,
               "Double the chunk size after each chunk up to this (off = no limit)"),
    OptionDecl("vfs-read-wait", _V, "read_wait", _D, 0.020,
               "How long an out-of-order read waits for the in-order one before seeking"),
    OptionDecl("vfs-used-is-size", _V, "used_is_size", _B, False,
               "Report used space to df by summing the sizes of every file of the remote "
               "(a walk of the whole remote, cached for dir-cache-time)"),
    OptionDecl("vfs-write-back", _V, "write_back", _D, 5.0,
               "Upload a changed file this long after its last close"),
    OptionDecl("vfs-write-wait", _V, "write_wait", _D, 1.0,
               "How long an out-of-order write waits for the in-order one before failing"),
    # --- process-wide flags in rclone, per volume here ---
    OptionDecl("buffer-size", _G, "buffer_size", _S, 16 * 1024 * 1024,
               "Read-ahead buffer per open file"),
    OptionDecl("transfers", _G, "transfers", ValueType.INT, 4,
               "Uploads run at the same time"),
    # --- symlinks and metadata (issue 11 §1, §3) ---
    OptionDecl("links", _G, "links", _B, False,
               "Translate symlinks to/from regular files with a '.rclonelink' extension",
               short="l"),
    OptionDecl("vfs-links", _V, "links", _B, False,
               "Translate symlinks to/from regular files with a '.rclonelink' extension "
               "for the VFS (the same as --links here)"),
    OptionDecl("link-perms", _V, "link_perms", _MODE, 0o777, "Permission bits of symlinks"),
    OptionDecl("metadata", _G, "metadata", _B, False,
               "Keep modes, owners and times of files on the remote (chmod, chown, utimes)",
               short="M"),
    OptionDecl("vfs-metadata-extension", _V, "metadata_extension", _STR, "",
               "Show each file's metadata as JSON in a virtual file with this extension "
               "added to its name (e.g. .metadata); not listed, found by name"),
    # --- added: the remaining global flags of the seed page ---
    OptionDecl("checkers", _G, "checkers", ValueType.INT, 8,
               "Number of checkers to run in parallel", no_effect=NO_VFS_CHECKERS),
    OptionDecl("use-server-modtime", _G, "use_server_modtime", _B, False,
               "Use the server's modification time (S3: LastModified) instead of the "
               "time kept in object metadata"),
    OptionDecl("log-format", _G, "log_format", _STR, "date,time",
               "Comma separated list of log format options: date, time, microseconds, "
               "UTC, longfile, shortfile, pid, nolevel, json"),
    # --- added: rclone 1.75's VFS and mount flags ---
    OptionDecl("direct-io", _M, "direct_io", _B, False,
               "Use direct I/O: the kernel caches no file data"),
    OptionDecl("allow-idmap", _M, None, _B, False,
               "Allow id-mapped mounts", support=NO_IDMAP),
    OptionDecl("vfs-read-chunk-streams", _V, "read_chunk_streams", ValueType.INT, 0,
               "Number of ranged reads of vfs-read-chunk-size run in parallel for one "
               "sequential reader (0 = one stream of growing chunks)"),
    OptionDecl("vfs-cache-min-free-space", _V, "cache_min_free_space", _S, UNLIMITED,
               "Evict cached files to keep this much free on the cache's disk"),
    OptionDecl("vfs-refresh", _V, "refresh", _B, False,
               "Read every directory of the remote in the background at mount"),
    OptionDecl("vfs-handle-caching", _V, "handle_caching", _D, 5.0,
               "Keep a closed file's cache handle (data file and remote reader) open this "
               "long, for a quick reopen (0 = close at once)"),
    OptionDecl("vfs-block-norm-dupes", _V, "block_norm_dupes", _B, False,
               "Hide all but one of the names of a directory that are the same once "
               "Unicode-normalised (NFC), and log an error"),
    # --- added: filter flags (rclone's filtering rules; they hide what the volume shows) ---
    OptionDecl("include", _F, "include", _LIST, (),
               "Include files matching pattern (repeatable; adds an implied exclude of all else)"),
    OptionDecl("exclude", _F, "exclude", _LIST, (),
               "Exclude files matching pattern (repeatable)"),
    OptionDecl("filter", _F, "filter", _LIST, (),
               'Add a file filtering rule, "+ pattern" or "- pattern" (repeatable)'),
    OptionDecl("filter-from", _F, "filter_from", _LIST, (),
               "Read filtering rules from a file (repeatable)"),
    OptionDecl("include-from", _F, "include_from", _LIST, (),
               "Read include patterns from a file (repeatable)"),
    OptionDecl("exclude-from", _F, "exclude_from", _LIST, (),
               "Read exclude patterns from a file (repeatable)"),
    OptionDecl("files-from", _F, "files_from", _LIST, (),
               "Show only the files named in a file (repeatable)"),
    OptionDecl("files-from-raw", _F, "files_from_raw", _LIST, (),
               "Show only the files named in a file, lines taken as they are (repeatable)"),
    OptionDecl("min-size", _F, "min_size", _S, UNLIMITED,
               "Only show files bigger than this"),
    OptionDecl("max-size", _F, "max_size", _S, UNLIMITED,
               "Only show files smaller than this"),
    OptionDecl("min-age", _F, "min_age", _D, DURATION_OFF,
               "Only show files older than this"),
    OptionDecl("max-age", _F, "max_age", _D, DURATION_OFF,
               "Only show files younger than this"),
    OptionDecl("max-depth", _F, "max_depth", ValueType.INT, -1,
               "Show nothing deeper than this many levels (-1 = no limit)"),
    OptionDecl("exclude-if-present", _F, "exclude_if_present", _LIST, (),
               "Hide directories that hold a file of this name (repeatable)"),
    OptionDecl("ignore-case", _F, "ignore_case", _B, False,
               "Ignore case in filters"),
    OptionDecl("hash-filter", _F, "hash_filter", _STR, "",
               "Show only the files whose name hashes into bucket K of N (K/N)"),
    OptionDecl("delete-excluded", _F, "delete_excluded", _B, False,
               "Delete files on dest excluded from sync", no_effect=NO_SYNC),
    OptionDecl("metadata-include", _F, None, _LIST, (),
               "Include files whose metadata matches pattern", support=NO_METADATA),
    OptionDecl("metadata-exclude", _F, None, _LIST, (),
               "Exclude files whose metadata matches pattern", support=NO_METADATA),
    OptionDecl("metadata-filter", _F, None, _LIST, (),
               "Add a metadata filtering rule", support=NO_METADATA),
    OptionDecl("metadata-include-from", _F, None, _LIST, (),
               "Read metadata include patterns from a file", support=NO_METADATA),
    OptionDecl("metadata-exclude-from", _F, None, _LIST, (),
               "Read metadata exclude patterns from a file", support=NO_METADATA),
    OptionDecl("metadata-filter-from", _F, None, _LIST, (),
               "Read metadata filtering rules from a file", support=NO_METADATA),
    # --- network timeouts, rclone's global flags (issue 12, remote outage) ---
    OptionDecl("timeout", _G, "io_timeout", _D, 300.0,
               "IO idle timeout: a connection the server sends nothing on for this long "
               "is dropped, and what waited on it fails (0 = none)"),
    OptionDecl("contimeout", _G, "connect_timeout", _D, 60.0,
               "Connect timeout: how long opening a connection to the remote may take "
               "(0 = none)"),
)  # fmt: skip

_BY_NAME: dict[str, OptionDecl] = {decl.name: decl for decl in OPTIONS}


def normalise_key(key: str) -> str:
    """rclone's rule: case-insensitive, a leading "--" dropped, "_" read as "-"."""
    key = key.strip().lower()
    key = key.removeprefix("--")
    return key.replace("_", "-")


def find_option(key: str) -> OptionDecl | None:
    return _BY_NAME.get(normalise_key(key))


def _parse_all(values: Mapping[str, str]) -> Iterable[tuple[OptionDecl, OptionValue]]:
    for key in sorted(values):
        decl = find_option(key)
        if decl is None:
            raise OptionError(f'unknown option "{key}"')
        yield decl, decl.parse(values[key])


def apply_option_values(
    values: Mapping[str, str],
    mount: MountOptions | None = None,
    vfs: VfsOptions | None = None,
) -> tuple[MountOptions, VfsOptions]:
    """Parse raw registry option values onto `mount`/`vfs` (default: the defaults).

    Keys are normalised; every key must be a registry option. Raises OptionError
    for an unknown key, a malformed value or an option not accepted yet.
    """
    mount_changes: dict[str, OptionValue] = {}
    vfs_changes: dict[str, OptionValue] = {}
    filter_changes: dict[str, OptionValue] = {}
    for decl, value in _parse_all(values):
        assert decl.field is not None  # options without a field are never supported
        if decl.kind is OptionKind.MOUNT:
            mount_changes[decl.field] = value
        elif decl.kind is OptionKind.FILTER:
            filter_changes[decl.field] = value
        else:
            vfs_changes[decl.field] = value
    base_vfs = vfs or VfsOptions()
    new_filters = dataclasses.replace(base_vfs.filters, **filter_changes)  # type: ignore[arg-type]
    check_filter_options(new_filters)
    new_mount = dataclasses.replace(mount or MountOptions(), **mount_changes)  # type: ignore[arg-type]
    new_vfs = dataclasses.replace(base_vfs, filters=new_filters, **vfs_changes)  # type: ignore[arg-type]
    if new_vfs.read_chunk_streams < 0:
        raise OptionError(
            f"vfs-read-chunk-streams: {new_vfs.read_chunk_streams} is negative "
            "(use 0 for one stream, or the number of parallel reads)"
        )
    check_log_format(new_vfs.log_format)
    return new_mount, new_vfs


def given_value(name: str, *layers: Mapping[str, str]) -> str | None:
    """The raw value of option `name` in the last of `layers` (daemon flags, then
    volume options) that gives it, keys compared normalised; None if none does."""
    found = None
    for layer in layers:
        for key, value in layer.items():
            if normalise_key(key) == name:
                found = value
    return found


def ineffective_options(values: Mapping[str, str]) -> list[str]:
    """One line per given option that is accepted but does nothing here, with why."""
    notes = []
    for key in sorted(values):
        decl = find_option(key)
        if decl is not None and decl.no_effect:
            notes.append(f"{decl.name}={values[key]}: accepted with no effect: {decl.no_effect}")
    return notes


def check_option_values(values: Mapping[str, str]) -> None:
    """Raise OptionError unless every value is a valid, accepted registry option."""
    apply_option_values(values)
