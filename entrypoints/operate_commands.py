"""`cloudvol status [VOLUME] [--json] [--watch]` and `cloudvol rc COMMAND
[key=value ...]`: clients of the daemon's admin socket."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from entrypoints.admin_client import AdminError, AdminUnavailable, call_admin

ADMIN_SOCKET_NAME = "admin.sock"  # as adapters.admin.server names it
WATCH_INTERVAL = 1.0


def admin_socket(ns: argparse.Namespace, cache_dir: str) -> str:
    return os.path.abspath(ns.admin_socket or os.path.join(cache_dir, ADMIN_SOCKET_NAME))


def _status_url(volume: str | None) -> str:
    from urllib.parse import quote

    return f"/status?volume={quote(volume)}" if volume else "/status"


def run_status(ns: argparse.Namespace, cache_dir: str) -> int:
    path = admin_socket(ns, cache_dir)
    try:
        status = call_admin(path, "GET", _status_url(ns.volume))
        if ns.json:
            print(json.dumps(status, indent=2))
            return 0
        if ns.watch:
            return _watch(path, ns.volume)
        _print_status(status)
    except (AdminUnavailable, AdminError) as e:
        print(f"cloudvol status: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _print_status(status: dict[str, Any]) -> None:
    from rich.console import Console

    from entrypoints.status_view import render_status

    Console().print(render_status(status))


def _watch(path: str, volume: str | None) -> int:
    from rich.live import Live

    from entrypoints.status_view import render_status

    with Live(auto_refresh=False) as live:
        while True:
            status = call_admin(path, "GET", _status_url(volume))
            live.update(render_status(status, bars=True), refresh=True)
            time.sleep(WATCH_INTERVAL)


def parse_rc_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {pair!r}: expected key=value")
        params[key] = value
    return params


def run_rc(ns: argparse.Namespace, cache_dir: str) -> int:
    try:
        params = parse_rc_params(ns.params)
    except ValueError as e:
        print(f"cloudvol rc: error: {e}", file=sys.stderr)
        return 1
    try:
        reply = call_admin(admin_socket(ns, cache_dir), "POST", f"/rc/{ns.rc_command}", params)
    except (AdminUnavailable, AdminError) as e:
        print(f"cloudvol rc: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(reply, indent=2))
    return 0
