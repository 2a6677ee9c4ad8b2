import dataclasses

import pytest

from domain.errors import OptionError
from domain.options import (
    OPTIONS,
    SUPPORTED,
    OptionKind,
    apply_option_values,
    check_option_values,
    find_option,
    given_value,
    ineffective_options,
    normalise_key,
)
from domain.volume import CacheMode, MountOptions, VfsOptions
from tests.rclone_doc import mentions_flag, serve_docker_flags

DAEMON_ONLY = {"base-dir", "socket-addr", "socket-gid", "no-spec", "forget-state", "cache-dir"}

# Global rclone flags that cloudvol takes per volume (each volume has its own process).
PER_VOLUME_GLOBALS = {"buffer-size", "transfers", "checkers", "use-server-modtime", "log-format"}

# rclone 1.75's VFS and mount flags and its filter group, which the seed page's
# flag list does not show (issue 11 §6).
NEWER_FLAGS = {
    "direct-io", "allow-idmap", "vfs-read-chunk-streams", "vfs-cache-min-free-space",
    "vfs-refresh", "vfs-handle-caching", "vfs-block-norm-dupes",
}  # fmt: skip
FILTER_FLAGS = {
    "include", "exclude", "filter", "filter-from", "include-from", "exclude-from",
    "files-from", "files-from-raw", "min-size", "max-size", "min-age", "max-age", "max-depth",
    "exclude-if-present", "ignore-case", "hash-filter", "delete-excluded",
    "metadata-include", "metadata-exclude", "metadata-filter", "metadata-include-from",
    "metadata-exclude-from", "metadata-filter-from",
}  # fmt: skip

PAGE_FLAGS = serve_docker_flags()

# rclone 1.75's flags for symlinks and metadata (issue 11 §1, §3), newer than the
# page; their defaults are rclone 1.75's.
POSIX_175 = {
    "links": "false", "vfs-links": "false", "link-perms": "0777", "metadata": "false",
    "vfs-metadata-extension": "",
}  # fmt: skip

# rclone's global network timeouts (issue 12), with the defaults `rclone help flags`
# shows; the serve docker page does not list global flags.
NETWORK_GLOBALS = {"timeout": "5m0s", "contimeout": "1m0s"}

# The mount and VFS options of rclone's `serve docker` page, plus the globals.
RCLONE_OPTIONS = (
    (set(PAGE_FLAGS) - DAEMON_ONLY - {"help"})
    | PER_VOLUME_GLOBALS
    | NEWER_FLAGS
    | FILTER_FLAGS
    | set(POSIX_175)
    | set(NETWORK_GLOBALS)
)

SUPPORTED_NOW = {
    "allow-non-empty", "allow-other", "allow-root", "async-read", "attr-timeout", "debug-fuse",
    "default-permissions", "devname", "fuse-flag", "option", "write-back-cache", "no-seek",
    "read-only", "no-modtime", "dir-cache-time", "umask", "uid", "gid", "dir-perms",
    "file-perms", "vfs-disk-space-total-size", "vfs-cache-mode", "max-read-ahead",
    "vfs-case-insensitive", "vfs-write-wait", "buffer-size", "no-checksum",
    "vfs-cache-max-age", "vfs-cache-max-size", "vfs-cache-poll-interval", "vfs-fast-fingerprint",
    "vfs-read-ahead", "vfs-read-chunk-size", "vfs-read-chunk-size-limit", "vfs-read-wait",
    "vfs-write-back", "transfers",
    # issue 11 §5: accepted (some with no effect on Linux, logged at INFO)
    "vfs-used-is-size", "poll-interval", "daemon-timeout", "mount-case-insensitive",
    "network-mode", "noappledouble", "noapplexattr", "volname", "checkers",
    "use-server-modtime", "log-format",
    # issue 11 §6
    "vfs-read-chunk-streams", "vfs-cache-min-free-space", "vfs-refresh",
    "vfs-block-norm-dupes", "direct-io", "vfs-handle-caching",
    "include", "exclude", "filter", "filter-from", "include-from", "exclude-from",
    "files-from", "files-from-raw", "min-size", "max-size", "min-age", "max-age", "max-depth",
    "exclude-if-present", "ignore-case", "hash-filter", "delete-excluded",
} | set(POSIX_175) | set(NETWORK_GLOBALS)  # fmt: skip

PROCESS_DEPENDENT = {"uid", "gid", "umask"}


def test_the_flags_kept_apart_are_rclone_flags() -> None:
    # The daemon's own flags are in the page's list, the globals in its text.
    assert DAEMON_ONLY - {"cache-dir"} <= set(PAGE_FLAGS)
    assert all(
        mentions_flag(name)
        for name in {"buffer-size", "transfers", "checkers", "use-server-modtime", "cache-dir"}
    )


def test_every_rclone_option_is_declared_once() -> None:
    names = [decl.name for decl in OPTIONS]
    assert len(names) == len(set(names))
    assert set(names) == RCLONE_OPTIONS
    assert not DAEMON_ONLY & set(names)


def test_defaults_are_written_as_rclone_documents_them() -> None:
    for decl in OPTIONS:
        if decl.name in PROCESS_DEPENDENT | PER_VOLUME_GLOBALS | NEWER_FLAGS | FILTER_FLAGS:
            continue
        if decl.name in POSIX_175:
            assert decl.format_default() == POSIX_175[decl.name]
            continue
        if decl.name in NETWORK_GLOBALS:
            assert decl.format_default() == NETWORK_GLOBALS[decl.name]
            continue
        documented = PAGE_FLAGS[decl.name]
        if documented is None:  # pflag prints no default when it is the zero value
            assert decl.format_default() in ("false", "", "0"), decl.name
        else:
            assert decl.format_default() == documented, decl.name


def test_exactly_the_implemented_options_are_supported() -> None:
    assert {decl.name for decl in OPTIONS if decl.is_supported} == SUPPORTED_NOW


def test_fields_exist_and_defaults_agree_with_the_dataclasses() -> None:
    mount, vfs = MountOptions(), VfsOptions()
    for decl in OPTIONS:
        if decl.field is None:
            assert not decl.is_supported, decl.name
            continue
        target: object = mount if decl.kind is OptionKind.MOUNT else vfs
        if decl.kind is OptionKind.FILTER:
            target = vfs.filters
        assert dataclasses.is_dataclass(target)
        assert decl.field in {f.name for f in dataclasses.fields(target)}, decl.name
        if decl.name not in PROCESS_DEPENDENT:
            assert getattr(target, decl.field) == decl.default, decl.name


def test_globals_are_the_per_volume_process_flags() -> None:
    # rclone's global -l / --links, -M / --metadata, --timeout and --contimeout are
    # per volume too.
    assert {d.name for d in OPTIONS if d.kind is OptionKind.GLOBAL} == PER_VOLUME_GLOBALS | {
        "links",
        "metadata",
        "timeout",
        "contimeout",
    }


def test_declared_defaults_round_trip_through_their_syntax() -> None:
    for decl in OPTIONS:
        assert decl.type.parse(decl.name, decl.format_default()) == decl.default, decl.name


@pytest.mark.parametrize(
    ("key", "normal"),
    [
        ("allow-other", "allow-other"),
        ("--allow-other", "allow-other"),
        ("Allow_Other", "allow-other"),
        ("--VFS_CACHE_MODE", "vfs-cache-mode"),
        ("sftp_key_file", "sftp-key-file"),
    ],
)
def test_normalise_key(key: str, normal: str) -> None:
    assert normalise_key(key) == normal


def test_find_option_normalises() -> None:
    decl = find_option("--Dir_Cache_Time")
    assert decl is not None and decl.name == "dir-cache-time"
    assert find_option("sftp-host") is None


def test_apply_option_values_sets_fields() -> None:
    mount, vfs = apply_option_values(
        {
            "allow_other": "true",
            "--attr-timeout": "2s",
            "fuse-flag": "a,b",
            "option": "ro",
            "dir-cache-time": "10m",
            "umask": "077",
            "uid": "1000",
            "vfs-cache-mode": "OFF",
            "vfs-disk-space-total-size": "1T",
            "read-only": "1",
        }
    )
    assert mount.allow_other is True
    assert mount.attr_timeout == 2.0
    assert mount.fuse_flags == ("a", "b")
    assert mount.extra_options == ("ro",)
    assert vfs.dir_cache_time == 600.0
    assert vfs.umask == 0o077
    assert vfs.uid == 1000
    assert vfs.cache_mode is CacheMode.OFF
    assert vfs.disk_space_total_size == 1 << 40
    assert vfs.read_only is True
    assert apply_option_values({}) == (MountOptions(), VfsOptions())


def test_apply_option_values_builds_on_given_base() -> None:
    base_vfs = VfsOptions(uid=42)
    _, vfs = apply_option_values({"gid": "7"}, vfs=base_vfs)
    assert (vfs.uid, vfs.gid) == (42, 7)


REFUSED_WITH_A_REASON = {
    "daemon": "volume plugin",
    "daemon-wait": "volume plugin",
    "allow-idmap": "libfuse 3.17",
    "metadata-include": "no object metadata",
    "metadata-exclude": "no object metadata",
    "metadata-filter": "no object metadata",
    "metadata-include-from": "no object metadata",
    "metadata-exclude-from": "no object metadata",
    "metadata-filter-from": "no object metadata",
}


def test_every_option_is_supported_or_refused_with_its_reason() -> None:
    assert RCLONE_OPTIONS - SUPPORTED_NOW == set(REFUSED_WITH_A_REASON)


@pytest.mark.parametrize(("name", "why"), sorted(REFUSED_WITH_A_REASON.items()))
def test_refused_options_say_why_even_with_default_values(name: str, why: str) -> None:
    decl = find_option(name)
    assert decl is not None
    with pytest.raises(OptionError) as info:
        apply_option_values({name: decl.format_default()})
    assert str(info.value).startswith(f"{name}: ")
    assert why in str(info.value)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("daemon", "volume plugin"),
        ("daemon-wait", "volume plugin"),
    ],
)
def test_platform_and_plugin_meaningless_options_say_why(name: str, why: str) -> None:
    with pytest.raises(OptionError) as info:
        check_option_values({name: "true" if name != "volname" else "x"})
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert why in message
    assert "not supported yet" not in message


@pytest.mark.parametrize(
    ("name", "raw", "why"),
    [
        ("network-mode", "true", "no effect"),
        ("noappledouble", "false", "no effect"),
        ("noapplexattr", "true", "no effect"),
        ("volname", "x", "no effect"),
        ("mount-case-insensitive", "true", "no effect"),
        ("daemon-timeout", "10s", "per-request time limit"),
        ("poll-interval", "10s", "SFTP and S3 cannot report changes"),
        ("checkers", "16", "checkers"),
        ("delete-excluded", "true", "sync"),
    ],
)
def test_options_without_effect_are_accepted_and_say_why(name: str, raw: str, why: str) -> None:
    check_option_values({name: raw})
    notes = ineffective_options({name: raw, "read-only": "true"})
    assert len(notes) == 1
    assert notes[0].startswith(f"{name}={raw}: accepted with no effect: ")
    assert why in notes[0]


def test_new_options_land_in_their_fields() -> None:
    mount, vfs = apply_option_values(
        {
            "direct-io": "true",
            "vfs-read-chunk-streams": "4",
            "vfs-cache-min-free-space": "1G",
            "vfs-refresh": "true",
            "vfs-block-norm-dupes": "true",
            "vfs-used-is-size": "true",
            "use-server-modtime": "true",
            "log-format": "date,time,UTC",
            "include": '"*.{jpg,png}",*.txt',
            "min-size": "1K",
            "max-age": "1d",
            "max-depth": "2",
        }
    )
    assert mount.direct_io
    assert (vfs.read_chunk_streams, vfs.cache_min_free_space) == (4, 1 << 30)
    assert vfs.refresh and vfs.block_norm_dupes and vfs.used_is_size and vfs.use_server_modtime
    assert vfs.log_format == "date,time,UTC"
    assert vfs.filters.include == ("*.{jpg,png}", "*.txt")
    assert (vfs.filters.min_size, vfs.filters.max_age, vfs.filters.max_depth) == (1024, 86400, 2)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vfs-read-chunk-streams": "-1"}, "vfs-read-chunk-streams: -1 is negative"),
        ({"log-format": "date,colour"}, 'log-format: unknown item "colour"'),
        ({"include": "a[b"}, "include: mismatched '['"),
        ({"filter": "* x"}, 'filter: malformed rule "* x"'),
        ({"hash-filter": "3/2"}, "hash-filter: bucket 3 is not below 2"),
        ({"files-from": "/l", "exclude": "x"}, "files-from: it overrides every other filter"),
        ({"filter-from": "-"}, "filter-from: standard input"),
        ({"max-depth": "-2"}, "max-depth: -2"),
    ],
)
def test_new_options_refuse_bad_values_by_name(values: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError) as info:
        apply_option_values(values)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("mode", ["off", "writes", "FULL", "minimal"])
def test_every_cache_mode_is_accepted(mode: str) -> None:
    _, vfs = apply_option_values({"vfs-cache-mode": mode})
    assert vfs.cache_mode is CacheMode(mode.lower())


def test_malformed_value_names_the_option() -> None:
    with pytest.raises(OptionError, match=r"^dir-cache-time: invalid duration"):
        check_option_values({"dir-cache-time": "soon"})


def test_unknown_option() -> None:
    with pytest.raises(OptionError, match='unknown option "bogus"'):
        check_option_values({"bogus": "1"})


def test_flipping_support_is_one_field() -> None:
    decl = find_option("transfers")
    assert decl is not None
    flipped = dataclasses.replace(decl, support=SUPPORTED)
    assert flipped.parse("8") == 8


def test_async_read_can_only_stay_on() -> None:
    decl = find_option("async-read")
    assert decl is not None
    assert decl.parse("true") is True
    with pytest.raises(OptionError, match='async-read: "false" is not supported yet'):
        decl.parse("false")


def test_given_value_takes_the_last_layer_that_gives_it() -> None:
    assert given_value("log-format", {"log-format": "date"}, {"Log_Format": "pid"}) == "pid"
    assert given_value("log-format", {"log-format": "date"}, {}) == "date"
    assert given_value("log-format", {}, {}) is None
