"""Docker restarts while the plugin runs (a package upgrade, `systemctl restart
docker`): containers started with `--restart always` come back with their volumes,
served by the same cloudvol daemon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import unique
from tests.integration.fixtures.dockerd import Dockerd, _DockerdProcess, restartable_dockerd
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "sshd"]  # fixtures used by name


@pytest.fixture
def own_dockerd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Dockerd, _DockerdProcess]]:
    with restartable_dockerd(tmp_path_factory.mktemp("rd")) as docker:
        yield docker


def test_restart_always_containers_get_their_volumes_back(
    own_dockerd: tuple[Dockerd, _DockerdProcess], cloudvol_daemon: CloudvolDaemon,
    sshd: SshdServer,
) -> None:  # fmt: skip
    docker, dockerd = own_dockerd
    remote = sshd.data_dir / "restarts"
    remote.mkdir()
    volume = unique("rv")
    docker.run("volume", "create", "-d", cloudvol_daemon.driver, *sshd.volume_options(remote),
               volume)  # fmt: skip
    docker.run(
        "run", "-d", "--restart", "always", "--stop-timeout", "1", "--network", "none",
        "--name", unique("c"),
        "-v", f"{volume}:/data", docker.image,
        "sh", "-c", 'n=$(ls /data | wc -l); echo "boot $n" > "/data/boot$n"; exec sleep 3600',
    )  # fmt: skip

    def booted(times: int) -> bool:
        return sorted(p.read_text() for p in remote.iterdir()) == [
            f"boot {n}\n" for n in range(times)
        ]

    wait_until("the container wrote its first line", lambda: booted(1))
    dockerd.stop()  # stops the container: Docker unmounts the volume
    wait_until("the volume is unmounted", lambda: not cloudvol_daemon.live_worker_pids())
    dockerd.start(docker)
    wait_until(
        "the restarted container wrote through its volume again", lambda: booted(2),
        lambda: explain(docker, dockerd, cloudvol_daemon),
    )  # fmt: skip
    assert docker.in_container(volume, "cat /data/boot0 /data/boot1") == "boot 0\nboot 1\n"


def explain(docker: Dockerd, dockerd: _DockerdProcess, daemon: CloudvolDaemon) -> str:
    calls = [
        line
        for line in daemon.log_file.read_text(errors="replace").splitlines()
        if "adapters.http.app" in line and " request " not in line and " reply " not in line
    ]
    return "\n".join([
        docker.run("ps", "-a", check=False).stdout,
        "the plugin calls:", *calls[-40:],
        "dockerd's log:", (dockerd.root / "dockerd.log").read_text(errors="replace")[-3000:],
    ])  # fmt: skip
