"""A host that went down hard: the daemon and every worker SIGKILLed, their FUSE
mounts left dead at the mountpoints. The daemon started again cleans the dead
mounts, restores every volume, uploads what the workers had not, and each volume
works in `docker run`."""

from __future__ import annotations

import errno
import json
import os
import signal

import httpx

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.processes import process_gone
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.integration.test_worker_crash import stat_errno

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name

MOUNT_ID = "before-the-crash"


def plugin_call(daemon: CloudvolDaemon, call: str, **body: str) -> dict[str, object]:
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://cloudvol", timeout=120) as client:
        response = client.post(f"/VolumeDriver.{call}", content=json.dumps(body))
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_after_a_hard_stop_every_volume_comes_back_whole(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    volumes = {unique("hr"): sshd.data_dir / f"hr{n}" for n in range(2)}
    for name, remote in volumes.items():
        remote.mkdir()
        create(docker, daemon, name, *sshd.volume_options(remote),
               "-o", "vfs-cache-mode=writes", "-o", "vfs-write-back=1h")  # fmt: skip
        plugin_call(daemon, "Mount", Name=name, ID=MOUNT_ID)  # as Docker mounts it
        (daemon.base_dir / name / "f").write_text(f"written to {name}\n")
    workers = daemon.live_worker_pids()
    assert sorted(workers) == sorted(volumes)

    daemon.kill()
    for pid in workers.values():
        os.kill(pid, signal.SIGKILL)
    wait_until("the workers are gone", lambda: all(process_gone(p) for p in workers.values()))
    for name in volumes:
        assert stat_errno(daemon.base_dir / name) == errno.ENOTCONN
        assert not (volumes[name] / "f").exists()  # its upload was an hour away

    daemon.start()
    for name, remote in volumes.items():
        wait_until(
            f"{name}: the file the dead worker held reached the server",
            lambda r=remote, n=name: (
                (r / "f").exists() and (r / "f").read_text() == f"written to {n}\n"
            ),
            daemon.log_tail,
        )
        assert stat_errno(daemon.base_dir / name) != errno.ENOTCONN
    listed = plugin_call(daemon, "List")["Volumes"]
    assert isinstance(listed, list)
    assert {v["Name"] for v in listed} >= set(volumes)
    for name in volumes:
        plugin_call(daemon, "Unmount", Name=name, ID=MOUNT_ID)
        assert docker.in_container(name, "cat /data/f") == f"written to {name}\n"
