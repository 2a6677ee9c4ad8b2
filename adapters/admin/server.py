"""Serving the admin app on its unix socket: mode 0600, so only the daemon's
user (root, as a rule) may ask; a stale socket file is replaced, a live one
means another daemon uses this cache directory."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from loguru import logger

from adapters.unix_socket import SocketPathTaken, bind_unix_socket

ADMIN_SOCKET_NAME = "admin.sock"
ADMIN_SOCKET_MODE = 0o600


class AdminSocketError(Exception):
    """The admin socket cannot be opened (in use, or something else is there)."""


def default_admin_socket(cache_dir: str) -> str:
    return os.path.join(cache_dir, ADMIN_SOCKET_NAME)


def open_admin_socket(path: str) -> socket.socket:
    """Bound and listening, mode 0600 from the start."""
    try:
        sock = bind_unix_socket(path, mode=ADMIN_SOCKET_MODE, directory_mode=0o700)
    except SocketPathTaken as exc:
        raise AdminSocketError(f"--admin-socket: {exc}") from None
    try:
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_admin(
    app: FastAPI, path: str, shutdown_trigger: Callable[[], Awaitable[None]]
) -> None:
    """Serve `app` on the admin socket `path` until `shutdown_trigger` returns;
    the socket file goes at the end."""
    sock = open_admin_socket(path)
    try:
        config = HypercornConfig()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        logger.info("admin API (cloudvol status, cloudvol rc) on unix:{}", path)
        await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
