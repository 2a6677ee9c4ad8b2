"""Fingerprints tell whether a remote file changed since it was cached.

Made of size, modification time and hash, as rclone's fs.Fingerprint; the fast
variant (--vfs-fast-fingerprint) leaves out what the backend is slow to give.
Unlike rclone's string compare, `same_remote` compares only the parts both
fingerprints have, so toggling the fast flag does not throw the cache away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.remote_entry import RemoteEntry

_SEP = ","


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime: float | None
    hash: str | None

    def __post_init__(self) -> None:
        if self.mtime is not None and not math.isfinite(self.mtime):
            raise ValueError(f"fingerprint modtime must be finite, got {self.mtime}")
        if self.hash == "":
            object.__setattr__(self, "hash", None)  # an empty hash is no hash

    @classmethod
    def of(
        cls,
        entry: RemoteEntry,
        *,
        fast: bool,
        hash: str | None = None,
        mtime_is_slow: bool = False,
        hash_is_slow: bool = True,
    ) -> Fingerprint:
        """`hash` is the backend's hash of the file, when it has one; slow parts
        are left out when `fast` is set."""
        return cls(
            size=entry.size,
            mtime=entry.mtime if not (fast and mtime_is_slow) else None,
            hash=hash if not (fast and hash_is_slow) else None,
        )

    def to_str(self) -> str:
        """The string form: size, mtime and hash joined by commas, an absent part left
        empty so positions stay unambiguous; repr() of the float round-trips exactly."""
        mtime = "" if self.mtime is None else repr(self.mtime)
        return _SEP.join((str(self.size), mtime, self.hash or ""))

    @classmethod
    def from_str(cls, s: str) -> Fingerprint:
        parts = s.split(_SEP, 2)  # the hash is last and may hold anything
        if len(parts) != 3:
            raise ValueError(f"malformed fingerprint {s!r}")
        size_s, mtime_s, hash_s = parts
        try:
            size = int(size_s)
            mtime = float(mtime_s) if mtime_s else None
        except ValueError:
            raise ValueError(f"malformed fingerprint {s!r}") from None
        return cls(size=size, mtime=mtime, hash=hash_s or None)

    def same_remote(self, other: Fingerprint) -> bool:
        """Whether both describe the same remote contents, judged on the parts
        both have (size always)."""
        if self.size != other.size:
            return False
        if self.mtime is not None and other.mtime is not None and self.mtime != other.mtime:
            return False
        if self.hash is not None and other.hash is not None:
            return self.hash.lower() == other.hash.lower()  # hex digests, any case
        return True
