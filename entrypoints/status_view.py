"""`cloudvol status` on the terminal: one block per volume, then the daemon, made
with rich from the admin API's JSON (`status --json` prints that JSON as it is)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


def human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h{minutes}m"
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _when(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    return f"{stamp} ({human_duration(now - epoch)} ago)"


def volume_block(volume: dict[str, Any], *, bars: bool, now: float) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    worker = volume.get("worker")
    cache = volume.get("cache")
    table.add_row("remote", str(volume.get("remote") or "-"))
    table.add_row("cache mode", str(volume.get("cache_mode") or "-"))
    table.add_row("mountpoint", str(volume.get("mountpoint") or "-"))
    table.add_row("mount IDs", ", ".join(volume.get("mount_ids") or []) or "-")
    if worker is None:
        table.add_row("worker", "none (not mounted, nothing to upload)")
    else:
        table.add_row("worker", f"pid {worker.get('pid')}, {worker.get('state')}")
    if cache:
        limit = cache.get("limit_bytes")
        table.add_row(
            "cache",
            f"{human_bytes(cache['used_bytes'])} used of "
            f"{human_bytes(limit) if limit is not None else 'no limit'}, {cache['items']} file(s)",
        )
        table.add_row(
            "dirty", f"{cache['dirty_files']} file(s), {human_bytes(cache['dirty_bytes'])}"
        )
        queue = cache.get("queue", [])
        sending = [q for q in queue if q["state"] == "uploading"]
        waiting = [q for q in queue if q["state"] != "uploading"]
        table.add_row("uploading", f"{len(sending)}" if sending else "none")
        for upload in sending:
            line = Text(
                f"  {upload['path']}: {human_bytes(upload['bytes_sent'])} of "
                f"{human_bytes(upload['size'])} at {human_bytes(upload['rate'])}/s"
            )
            row: RenderableType = line
            if bars:
                bar = ProgressBar(total=max(1, upload["size"]), completed=upload["bytes_sent"])
                row = Group(line, bar)
            table.add_row("", row)
        more = cache.get("queue_not_shown", 0)
        table.add_row(
            "queued",
            f"{len(waiting) + more} file(s), {human_bytes(sum(q['size'] for q in waiting))}",
        )
        uploads = cache["uploads"]
        table.add_row(
            "uploads",
            f"{uploads['completed']} done, {human_bytes(uploads['bytes_uploaded'])}; "
            f"{uploads['failed']} failed, {uploads['retried']} retried",
        )
        if uploads.get("last_error"):
            table.add_row(
                "last error",
                Text(f"{uploads['last_error']} at {_when(uploads['last_error_at'], now)}", "red"),
            )
    frontend = "cloudvol mount" if volume.get("frontend") == "mount" else "docker volume"
    return Panel(table, title=f"[bold]{volume['name']}[/] ({frontend})", title_align="left")


def daemon_block(daemon: dict[str, Any]) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("version", f"v{daemon['version']} (pid {daemon['pid']})")
    table.add_row("uptime", human_duration(daemon["uptime"]))
    table.add_row("plugin socket", daemon["socket"])
    table.add_row("admin socket", daemon["admin_socket"])
    table.add_row("state file", daemon["state_file"])
    table.add_row("config file", daemon.get("config_file") or "-")
    if daemon.get("metrics_addr"):
        table.add_row("metrics", f"http://{daemon['metrics_addr']}/metrics")
    return Panel(table, title="[bold]daemon[/]", title_align="left")


def render_status(status: dict[str, Any], *, bars: bool = False) -> Group:
    now = time.time()
    volumes = status.get("volumes", [])
    blocks: list[RenderableType] = [volume_block(v, bars=bars, now=now) for v in volumes]
    if not volumes:
        blocks.append(Text("no volumes"))
    blocks.append(daemon_block(status["daemon"]))
    return Group(*blocks)
