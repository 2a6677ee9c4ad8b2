"""Prometheus metrics of the daemon and of every volume, names prefixed
`cloudvol_`. The volumes' numbers come from their workers: at each scrape the
daemon asks every worker for its statistics (the `status` snapshot given to
`update`), so one scrape covers all volumes, `cloudvol mount`s included."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

WorkerCounts = Callable[[], Mapping[str, int]]  # started, exited, crashed


class VolumeCollector(Collector):
    def __init__(self, worker_counts: WorkerCounts) -> None:
        self._volumes: list[dict[str, Any]] = []
        self._worker_counts = worker_counts

    def update(self, status: Mapping[str, Any]) -> None:
        self._volumes = list(status.get("volumes", []))

    def collect(self) -> Iterable[Metric]:
        yield from self._daemon_metrics()
        yield from self._volume_metrics()

    def _daemon_metrics(self) -> Iterator[Metric]:
        counts = self._worker_counts()
        for event, text in (
            ("started", "Mount workers seen starting"),
            ("exited", "Mount workers seen exiting"),
            ("crashed", "Mount workers that exited leaving their mount behind"),
        ):
            family = CounterMetricFamily(f"cloudvol_workers_{event}", text)
            family.add_metric([], counts.get(event, 0))
            yield family

    def _volume_metrics(self) -> Iterator[Metric]:
        def counter(name: str, text: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, text, labels=["volume"])

        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=["volume"])

        read = counter("cloudvol_remote_read_bytes", "Bytes read from the remote")
        written = counter("cloudvol_remote_written_bytes", "Bytes written to the remote")
        hits = counter("cloudvol_cache_hits", "Reads served from the VFS cache")
        misses = counter("cloudvol_cache_misses", "Reads that waited for the remote")
        queue_len = gauge("cloudvol_upload_queue_length", "Uploads queued or running")
        queue_bytes = gauge("cloudvol_upload_queue_bytes", "Bytes of the uploads queued")
        dirty = gauge("cloudvol_dirty_files", "Files changed and not uploaded yet")
        used = gauge("cloudvol_cache_used_bytes", "Bytes present in the VFS cache")
        uploaded = counter("cloudvol_uploads_completed", "Files uploaded")
        failed = counter("cloudvol_uploads_failed", "Upload attempts that failed")
        retried = counter("cloudvol_uploads_retried", "Upload attempts after a failure")
        ops = CounterMetricFamily(
            "cloudvol_fuse_operations", "FUSE operations served", labels=["volume", "operation"]
        )
        op_errors = CounterMetricFamily(
            "cloudvol_fuse_operation_errors",
            "FUSE operations answered with an error",
            labels=["volume", "operation"],
        )
        latency = HistogramMetricFamily(
            "cloudvol_fuse_operation_duration_seconds",
            "Time to serve a FUSE operation",
            labels=["volume", "operation"],
        )
        for volume in self._volumes:
            name = [str(volume.get("name"))]
            traffic = volume.get("remote_traffic") or {}
            cache = volume.get("cache")
            if traffic:
                read.add_metric(name, traffic.get("bytes_read", 0))
                written.add_metric(name, traffic.get("bytes_written", 0))
            if cache:
                hits.add_metric(name, cache["reads"]["hits"])
                misses.add_metric(name, cache["reads"]["misses"])
                queue_len.add_metric(name, len(cache["queue"]) + cache.get("queue_not_shown", 0))
                queue_bytes.add_metric(name, sum(q["size"] for q in cache["queue"]))
                dirty.add_metric(name, cache["dirty_files"])
                used.add_metric(name, cache["used_bytes"])
                uploaded.add_metric(name, cache["uploads"]["completed"])
                failed.add_metric(name, cache["uploads"]["failed"])
                retried.add_metric(name, cache["uploads"]["retried"])
            fuse = volume.get("fuse") or {}
            bounds = fuse.get("buckets", [])
            for op, counts in fuse.get("operations", {}).items():
                labels = [*name, op]
                ops.add_metric(labels, counts["count"])
                op_errors.add_metric(labels, counts["errors"])
                cumulative, buckets = 0, []
                for bound, count in zip(
                    [*map(str, bounds), "+Inf"], counts["buckets"], strict=True
                ):
                    cumulative += count
                    buckets.append((bound, cumulative))
                latency.add_metric(labels, buckets, counts["seconds"])
        yield from (read, written, hits, misses, queue_len, queue_bytes, dirty, used)
        yield from (uploaded, failed, retried, ops, op_errors, latency)


class ApiMetrics:
    """The plugin API's calls by endpoint, with their latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "cloudvol_api_calls",
            "Docker plugin API calls",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "cloudvol_api_call_duration_seconds",
            "Time to answer a Docker plugin API call",
            ["endpoint"],
            registry=registry,
        )

    def observe(self, endpoint: str, status_code: int, seconds: float) -> None:
        self.calls.labels(endpoint, "ok" if status_code < 400 else "error").inc()
        self.latency.labels(endpoint).observe(seconds)
