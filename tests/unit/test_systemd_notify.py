"""sd_notify messages, read from a datagram socket standing in for systemd's."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.systemd.notify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


def test_ready_stopping_and_status_reach_the_service_manager(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("serving on unix:/run/x.sock")
    notifier.status("waiting for the last uploads of 1 volume(s): v")
    notifier.stopping("unmounting every volume")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on unix:/run/x.sock"
    assert sock.recv(4096) == b"STATUS=waiting for the last uploads of 1 volume(s): v"
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=unmounting every volume"


def test_an_abstract_socket_address_is_understood() -> None:
    name = f"cloudvol-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_without_a_service_manager_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("up")  # no socket to send to, and no error


def test_a_service_manager_that_went_away_is_not_an_error(tmp_path: Path) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).stopping("bye")
