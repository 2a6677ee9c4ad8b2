"""cloudvol under systemd: the project's units pass `systemd-analyze verify`, and the
daemon, started the way the units start it (socket activation, Type=notify, the
unit's command line and environment), serves its socket, says READY=1, and at stop
waits for the volumes' last uploads while it reports them with STATUS=.

systemd-socket-activate (from Debian's systemd) stands in for systemd: it listens on
the socket and starts the daemon with it at the first connection. The unit's paths
for the socket, the cache and the config are moved under the test's directory.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.mounting.protocol import worker_paths
from adapters.mounting.system import lock_holder
from tests.integration.fixtures.cloudvol_daemon import fuse_mounts_under

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "packaging" / "systemd"
CLOUDVOL = Path(sys.executable).with_name("cloudvol")


def unit_values(unit: str, key: str) -> list[str]:
    lines = (UNITS / unit).read_text().splitlines()
    return [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for unit in ("cloudvol.service", "cloudvol.socket"):
        text = (UNITS / unit).read_text().replace("/usr/local/bin/cloudvol", str(CLOUDVOL))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "cloudvol.socket"),
         str(tmp_path / "cloudvol.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "every warning is a mistake in the units"


def test_the_units_values() -> None:
    assert unit_values("cloudvol.socket", "ListenStream") == ["/run/docker/plugins/cloudvol.sock"]
    assert unit_values("cloudvol.service", "Type") == ["notify"]
    assert "docker.service" in unit_values("cloudvol.service", "Before")[0].split()


@dataclass
class ActivatedDaemon:
    proc: subprocess.Popen[bytes]
    socket_path: Path
    notify: socket.socket
    cache_dir: Path
    base_dir: Path
    log_file: Path

    def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket_path)), timeout=60
        ) as client:
            reply = client.post(f"http://plugin/{endpoint}", json=body)
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
        assert not answer.get("Err"), answer["Err"]
        return answer

    def notifications(self, until: str, timeout: float = 60) -> list[str]:
        """Every message received until one contains `until`."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.notify.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                seen.append(self.notify.recv(4096).decode())
            except TimeoutError:
                break
            if until in seen[-1]:
                return seen
        raise AssertionError(f"no {until!r} within {timeout} s; got {seen}\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text()[-4000:] if self.log_file.exists() else ""


@pytest.fixture
def activated(tmp_path: Path) -> Iterator[ActivatedDaemon]:
    socket_path = tmp_path / "cloudvol.sock"
    notify_path = tmp_path / "notify"
    cache_dir, base_dir, log_file = tmp_path / "cache", tmp_path / "volumes", tmp_path / "log"
    moved = {
        "/var/cache/cloudvol": str(cache_dir),
        "/etc/cloudvol/cloudvol.conf": str(tmp_path / "cloudvol.conf"),
    }
    environment = []
    for assignment in unit_values("cloudvol.service", "Environment"):
        variable, value = assignment.split("=", 1)
        environment += ["-E", f"{variable}={moved.get(value, value)}"]
    [exec_start] = unit_values("cloudvol.service", "ExecStart")
    command = [str(CLOUDVOL) if word == "/usr/local/bin/cloudvol" else word
               for word in shlex.split(exec_start)]  # fmt: skip
    command += ["--base-dir", str(base_dir), "--log-file", str(log_file), "-vv"]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(socket_path), *environment,
         "-E", f"NOTIFY_SOCKET={notify_path}", *command],
        start_new_session=True,
    )  # fmt: skip
    daemon = ActivatedDaemon(proc, socket_path, notify, cache_dir, base_dir, log_file)
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no socket"
            time.sleep(0.05)
        yield daemon
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        pid = lock_holder(worker_paths(str(cache_dir), "vol").lock)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mountpoint in fuse_mounts_under(base_dir):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)
        notify.close()


def test_socket_activation_ready_and_a_stop_that_waits_for_uploads(
    activated: ActivatedDaemon, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    (remote / "sub").mkdir(parents=True)
    # The first connection starts the daemon on the socket systemd-socket-activate holds.
    assert activated.call("Plugin.Activate", {}) == {"Implements": ["VolumeDriver"]}
    assert any("READY=1" in m for m in activated.notifications(until="READY=1"))

    activated.call(
        "VolumeDriver.Create",
        {
            "Name": "vol",
            "Opts": {"remote": str(remote), "vfs-cache-mode": "writes", "vfs-write-back": "1h"},
        },
    )
    mountpoint = Path(
        activated.call("VolumeDriver.Mount", {"Name": "vol", "ID": "c1"})["Mountpoint"]
    )
    (mountpoint / "sub" / "data").write_text("must reach the remote\n")
    # Uploads into sub/ fail and are retried while a file stands where it was.
    shutil.rmtree(remote / "sub")
    (remote / "sub").write_text("in the way")

    os.kill(activated.proc.pid, signal.SIGTERM)  # systemd-socket-activate exec'd the daemon
    activated.notifications(until="STOPPING=1")
    waiting = activated.notifications(until="waiting for the last uploads of 1 volume(s): vol")
    assert activated.proc.poll() is None, "the daemon left before the upload was done"

    (remote / "sub").unlink()
    (remote / "sub").mkdir()
    assert activated.proc.wait(timeout=120) == 0, activated.log()
    # It left only once the upload was done.
    assert (remote / "sub" / "data").read_text() == "must reach the remote\n", waiting
