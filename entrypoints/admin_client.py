"""The CLI's side of the daemon's admin socket: one HTTP request per call, over
the unix socket, with the standard library (so `cloudvol status` starts quickly)."""

from __future__ import annotations

import errno
import http.client
import json
import socket
from typing import Any


class AdminUnavailable(Exception):
    """No daemon answers on the admin socket; the message says why and what to do."""


class AdminError(Exception):
    """The daemon refused the request (unknown command or volume, bad parameter)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def call_admin(
    path: str, method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 30.0
) -> Any:
    """The decoded JSON reply; raises AdminUnavailable or AdminError."""
    connection = _UnixConnection(path, timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, url, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except PermissionError:
        raise AdminUnavailable(
            f"permission denied on the admin socket {path}: only the daemon's user "
            "(root, as a rule) may use it"
        ) from None
    except (FileNotFoundError, ConnectionRefusedError) as e:
        reason = "no such socket" if isinstance(e, FileNotFoundError) else "nobody answers"
        raise AdminUnavailable(
            f"the cloudvol daemon is not running: cannot reach its admin socket {path} "
            f"({reason}). Start it with `cloudvol serve docker`, or pass the same "
            "--cache-dir (or --admin-socket) as the daemon"
        ) from None
    except OSError as e:
        if e.errno == errno.EACCES:
            raise AdminUnavailable(f"permission denied on the admin socket {path}") from None
        raise AdminUnavailable(f"cannot talk to the daemon on {path}: {e}") from None
    finally:
        connection.close()
    try:
        reply = json.loads(raw)
    except ValueError:
        raise AdminError(f"the daemon sent a reply that is not JSON: {raw[:200]!r}") from None
    if response.status >= 400:
        message = reply.get("error") if isinstance(reply, dict) else None
        raise AdminError(str(message or f"HTTP {response.status}"))
    return reply
