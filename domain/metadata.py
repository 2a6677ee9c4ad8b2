"""What `--metadata` keeps of a file: permission bits, owner and times.

The same fields travel in three shapes: SFTP attributes (adapters), rclone's
metadata keys on object stores (`mode` octal, `uid`/`gid` decimal, `mtime`/`atime`
RFC 3339 with nanoseconds), and the JSON of `--vfs-metadata-extension` files,
which uses rclone's keys too so that a file read from either looks the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PERMISSION_BITS = 0o7777


@dataclass(frozen=True, slots=True)
class FileMetadata:
    """Each field is None when unknown (or not to be changed, in a request)."""

    mode: int | None = None  # permission bits only: the file type is not metadata
    uid: int | None = None
    gid: int | None = None
    atime: float | None = None  # seconds since the epoch, may be negative
    mtime: float | None = None

    def merged(self, changes: FileMetadata) -> FileMetadata:
        """These fields, replaced by those `changes` sets."""
        updates = {
            f.name: getattr(changes, f.name)
            for f in dataclasses.fields(changes)
            if getattr(changes, f.name) is not None
        }
        return dataclasses.replace(self, **updates)

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with nanoseconds, as rclone writes `mtime` and `atime`;
    exact for any year from 1 to 9999 (no float rounding past microseconds)."""
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    stamp = _EPOCH + dt.timedelta(seconds=whole)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with any fraction of a second."""
    text = text.strip()
    main, _, rest = text.partition(".")
    fraction = ""
    zone = ""
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for i in range(len(main) - 1, 9, -1):
            if main[i] in "Z+-":
                main, zone = main[:i], main[i:]
                break
    zone = "+00:00" if zone in ("Z", "z", "") else zone
    stamp = dt.datetime.fromisoformat(main + zone)
    whole = (stamp - _EPOCH) // dt.timedelta(seconds=1)
    return whole + (int(fraction[:9].ljust(9, "0")) / 1e9 if fraction else 0.0)


def to_rclone_keys(metadata: FileMetadata) -> dict[str, str]:
    """rclone's metadata keys for the fields that are known."""
    keys: dict[str, str] = {}
    if metadata.mode is not None:
        keys["mode"] = f"{metadata.mode & _PERMISSION_BITS:o}"
    if metadata.uid is not None:
        keys["uid"] = str(metadata.uid)
    if metadata.gid is not None:
        keys["gid"] = str(metadata.gid)
    if metadata.mtime is not None:
        keys["mtime"] = format_time(metadata.mtime)
    if metadata.atime is not None:
        keys["atime"] = format_time(metadata.atime)
    return keys


def from_rclone_keys(keys: dict[str, str]) -> FileMetadata:
    """The fields found in rclone's metadata keys; a malformed value is left out
    (another tool's metadata must not make a file unreadable)."""

    def number(key: str, base: int) -> int | None:
        try:
            return int(keys[key], base) if key in keys else None
        except ValueError:
            return None

    def time(key: str) -> float | None:
        try:
            return parse_time(keys[key]) if key in keys else None
        except ValueError:
            return None

    mode = number("mode", 8)
    return FileMetadata(
        mode=mode & _PERMISSION_BITS if mode is not None else None,
        uid=number("uid", 10),
        gid=number("gid", 10),
        atime=time("atime"),
        mtime=time("mtime"),
    )


def metadata_json(metadata: FileMetadata) -> bytes:
    """The content of a `--vfs-metadata-extension` file: rclone's keys as JSON."""
    return (json.dumps(to_rclone_keys(metadata), indent="\t", sort_keys=True) + "\n").encode()
