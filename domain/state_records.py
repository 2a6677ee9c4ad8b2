"""A volume <-> one record of rclone's `docker-plugin.state` (a JSON list of them).

rclone's record (cmd/serve/docker/volume.go) is
`{"name", "mountpoint", "created", "fs", "type"?, "path"?, "options", "mounts"}`:
`created` is Go's `time.Time` JSON (RFC 3339 with up to nine fraction digits),
`type` and `path` are left out when empty, `fs` holds the `remote`/`fs` option,
and `options` holds every other `-o` option. We read and write that shape so a
state file moves between rclone and cloudvol either way.

rclone drops `path` when it restores a record; `restore_options` keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from domain.volume import Volume

# Options rclone lifts out of the `-o` map into their own record fields.
_REMOTE_KEYS = ("remote", "fs")
_LIFTED_KEYS = frozenset({*_REMOTE_KEYS, "type", "path"})


class RecordError(ValueError):
    """A state record does not have the shape rclone writes."""


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    mountpoint: str
    created_at: datetime
    fs: str = ""
    type: str = ""
    path: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[str, ...] = ()

    def volume_options(self) -> dict[str, str]:
        """The `-o` map to parse again on restore, `path` included."""
        opts = dict(self.options)
        for key, value in (("fs", self.fs), ("type", self.type), ("path", self.path)):
            if value:
                opts[key] = value
        return opts


def volume_to_record(volume: Volume) -> dict[str, object]:
    """The JSON-ready record for `volume`, in rclone's field order and omissions."""
    record: dict[str, object] = {
        "name": volume.name,
        "mountpoint": volume.mountpoint,
        "created": format_go_time(volume.created_at),
        "fs": volume.fs,
    }
    if volume.type:
        record["type"] = volume.type
    if volume.path:
        record["path"] = volume.path
    record["options"] = {
        k: v for k, v in sorted(volume.options.items()) if k and k not in _LIFTED_KEYS
    }
    record["mounts"] = sorted(volume.mount_ids)
    return record


def record_from_dict(data: Mapping[str, object]) -> VolumeRecord:
    """Read one record; raises RecordError naming the bad field."""
    name = _string(data, "name", required=True)
    created_raw = _string(data, "created", required=False)
    # Go's zero time is what rclone writes for a missing `created`.
    created = parse_go_time(created_raw) if created_raw else datetime(1, 1, 1, tzinfo=UTC)
    options = data.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in options.items()
    ):
        raise RecordError(f"volume {name!r}: 'options' must map strings to strings")
    mounts = data.get("mounts")
    if mounts is None:
        mounts = []
    if not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts):
        raise RecordError(f"volume {name!r}: 'mounts' must be a list of strings")
    return VolumeRecord(
        name=name,
        mountpoint=_string(data, "mountpoint", required=False),
        created_at=created,
        fs=_string(data, "fs", required=False),
        type=_string(data, "type", required=False),
        path=_string(data, "path", required=False),
        options=dict(options),
        mounts=tuple(dict.fromkeys(mounts)),
    )


def _string(data: Mapping[str, object], key: str, *, required: bool) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise RecordError(f"state record field {key!r} must be a non-empty string, got {value!r}")
    return value


_GO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_go_time(text: str) -> datetime:
    """RFC 3339 with 0-9 fraction digits (Go's time.Time JSON); beyond microseconds
    is truncated, as Python's datetime cannot hold nanoseconds."""
    match = _GO_TIME.fullmatch(text)
    if match is None:
        raise RecordError(f"bad RFC 3339 time {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        tz = timezone(sign * offset)
    micro = int((fraction or "").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError as exc:
        raise RecordError(f"bad RFC 3339 time {text!r}: {exc}") from None


def _zone(dt: datetime) -> str:
    offset = dt.utcoffset()
    if offset is None or offset == timedelta(0):
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def _seconds(dt: datetime) -> str:
    # Not strftime: glibc prints year 1 (Go's zero time) as "1", not "0001".
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def format_go_time(dt: datetime) -> str:
    """Go's RFC3339Nano: fraction with trailing zeros dropped, "Z" for UTC.
    A naive datetime is taken as UTC."""
    base = _seconds(dt)
    fraction = f".{dt.microsecond:06d}".rstrip("0").rstrip(".")
    return f"{base}{fraction}{_zone(dt)}"


def format_rfc3339(dt: datetime) -> str:
    """Go's time.RFC3339 (whole seconds): what Docker gets as CreatedAt."""
    return f"{_seconds(dt)}{_zone(dt)}"
