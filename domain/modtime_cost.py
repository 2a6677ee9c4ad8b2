"""Which backends pay for modification times: reading one costs an extra request
per file there, so a fast fingerprint (--vfs-fast-fingerprint) leaves them out."""

from __future__ import annotations

_SLOW_MODTIME = frozenset({"s3", "swift", "ftp", "qingstor"})


def modtime_is_slow(backend_type: str) -> bool:
    return backend_type in _SLOW_MODTIME
