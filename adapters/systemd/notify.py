"""sd_notify(3) without libsystemd: one datagram per message to $NOTIFY_SOCKET.

Under a `Type=notify` unit, systemd waits for READY=1 before it starts the units
ordered after this one (docker.service), shows STATUS= in `systemctl status`, and
takes STOPPING=1 to mean that the stop it asked for is under way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from loguru import logger


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        """True when a service manager listens: the daemon runs under Type=notify."""
        return bool(self._address)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            # The service manager went away or never listened: nothing to tell.
            logger.warning("cannot notify systemd at {}: {}", self._address.lstrip("\0"), exc)
