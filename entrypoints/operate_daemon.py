"""What `serve docker` runs beside the plugin API for its operators: the admin API
on `--admin-socket` (`cloudvol status`, `cloudvol rc`), the Prometheus metrics on
`--metrics-addr` when given, and the watch counting mount workers for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from adapters.admin.server import default_admin_socket, serve_admin
from adapters.metrics.address import parse_metrics_addr
from adapters.metrics.server import serve_metrics
from adapters.mounting.control import WorkerAdminClient
from application.operations import WorkerRequestFailed
from entrypoints.daemon_container import DaemonContainer


class OperateSettings(Protocol):
    """The part of `serve_docker.ServeSettings` read here."""

    @property
    def cache_dir(self) -> str: ...

    @property
    def admin_socket(self) -> str: ...

    @property
    def metrics_addr(self) -> str: ...

    @property
    def metrics_allow_remote(self) -> bool: ...


def admin_socket_path(settings: OperateSettings) -> str:
    return settings.admin_socket or default_admin_socket(settings.cache_dir)


async def serve_operations(
    container: DaemonContainer,
    settings: OperateSettings,
    shutdown_trigger: Callable[[], Awaitable[None]],
) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(container.worker_watch().run)
        if settings.metrics_addr:
            host, port = parse_metrics_addr(
                settings.metrics_addr, allow_remote=settings.metrics_allow_remote
            )
            tg.start_soon(serve_metrics, container.metrics(), host, port, shutdown_trigger)
        await serve_admin(container.admin_app(), admin_socket_path(settings), shutdown_trigger)
        tg.cancel_scope.cancel()


async def uploads_left(cache_dir: str, names: list[str]) -> str:
    """`vol1: 2 file(s), 3.0 MiB; vol2: ...`, asked of each volume's worker (for the
    progress lines while the daemon stops)."""
    workers = WorkerAdminClient(cache_dir, within=2.0)
    parts = []
    for name in names:
        try:
            cache = (await workers.request(name, "stats"))["stats"].get("cache") or {}
        except WorkerRequestFailed:
            parts.append(f"{name}: not answering")
            continue
        files, size = cache.get("dirty_files", 0), cache.get("dirty_bytes", 0)
        parts.append(f"{name}: {files} file(s), {size} byte(s)")
    return "; ".join(parts)
