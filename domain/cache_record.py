"""The metadata record kept on disk beside each VFS cache item.

One JSON object per item: the item's path in the volume, its size and
modification time, when it was last used, which byte ranges of the sparse data
file hold real data, the fingerprint of the remote file the data came from, and
whether the local copy holds changes not uploaded yet (dirty). Parsing is strict:
a damaged record raises ValueError and the cache drops the item (or, for a
record that still says dirty, keeps the data and uploads what the file holds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from domain.fingerprint import Fingerprint
from domain.ranges import RangeSet

VERSION = 1


@dataclass
class CacheRecord:
    path: str
    size: int
    mtime: float  # the file's modification time, seconds since the epoch
    atime: float  # last use, seconds since the epoch (eviction by age and LRU)
    ranges: RangeSet = field(default_factory=RangeSet)
    fingerprint: Fingerprint | None = None  # of the remote file the data matches
    dirty: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": VERSION,
                "path": self.path,
                "size": self.size,
                "mtime": self.mtime,
                "atime": self.atime,
                "ranges": self.ranges.to_json(),
                "fingerprint": self.fingerprint.to_str() if self.fingerprint else None,
                "dirty": self.dirty,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CacheRecord:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"cache record is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            raise ValueError("cache record: not a version 1 object")
        path, size, dirty = raw.get("path"), raw.get("size"), raw.get("dirty")
        if not isinstance(path, str) or not isinstance(dirty, bool):
            raise ValueError("cache record: bad path or dirty flag")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"cache record: bad size {size!r}")
        times = []
        for key in ("mtime", "atime"):
            value = raw.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"cache record: bad {key} {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"cache record: bad {key} {value!r}")
            times.append(float(value))
        ranges = RangeSet.from_json(raw.get("ranges"))
        fp_raw = raw.get("fingerprint")
        if fp_raw is not None and not isinstance(fp_raw, str):
            raise ValueError("cache record: bad fingerprint")
        fingerprint = Fingerprint.from_str(fp_raw) if fp_raw else None
        return cls(path, size, times[0], times[1], ranges, fingerprint, dirty)
