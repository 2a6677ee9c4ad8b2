"""`--metrics-addr HOST:PORT`: parsed, and refused unless it is a loopback address
(metrics name the volumes and their traffic) or `--metrics-allow-remote` is given."""

from __future__ import annotations

import ipaddress

from domain.errors import OptionError


def parse_metrics_addr(addr: str, *, allow_remote: bool) -> tuple[str, int]:
    host, sep, port_text = addr.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise OptionError(
            f"--metrics-addr {addr!r}: expected HOST:PORT, such as 127.0.0.1:9401 or [::1]:9401"
        )
    if not allow_remote and not is_loopback(host):
        raise OptionError(
            f"--metrics-addr {addr!r}: only a loopback address (127.0.0.1, ::1, localhost) "
            "is allowed; add --metrics-allow-remote to serve metrics on another address"
        )
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
