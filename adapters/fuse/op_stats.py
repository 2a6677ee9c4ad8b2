"""Counts of the FUSE operations this process served, by kind, with a latency
histogram: read by the worker's `stats` control request, and so by the daemon's
Prometheus metrics. One per process, as pyfuse3's session is."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

# Upper bounds in seconds, as Prometheus histograms take them (+Inf is implied).
LATENCY_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


@dataclass
class OperationCounts:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    # buckets[i]: operations that took at most LATENCY_BUCKETS[i] (not cumulative)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


class FuseOperationStats:
    def __init__(self) -> None:
        self._ops: dict[str, OperationCounts] = {}

    def record(self, operation: str, seconds: float, *, failed: bool) -> None:
        counts = self._ops.setdefault(operation, OperationCounts())
        counts.count += 1
        counts.errors += failed
        counts.seconds += seconds
        counts.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: {"buckets": [...], "operations": {op: {count, errors, seconds, buckets}}}."""
        return {
            "buckets": list(LATENCY_BUCKETS),
            "operations": {
                op: {
                    "count": c.count,
                    "errors": c.errors,
                    "seconds": c.seconds,
                    "buckets": list(c.buckets),
                }
                for op, c in sorted(self._ops.items())
            },
        }


FUSE_OPERATIONS = FuseOperationStats()
