"""cloudvol volumes for Docker Swarm services and stacks, on a single-node swarm: the
volume is created on demand by the node that runs a task, from the service's options."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import unique
from tests.integration.fixtures.dockerd import Dockerd
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.integration.fixtures.swarm import service_tasks, swarm, swarm_dockerd

__all__ = ["cloudvol_daemon", "sshd", "swarm", "swarm_dockerd"]  # fixtures used by name


def volume_mount(driver: str, sshd: SshdServer, source: str, remote_dir: Path) -> str:
    """A `--mount` value: a cloudvol volume of `remote_dir` on the SFTP server."""
    options = sshd.volume_options(remote_dir)[1::2]  # the values after each "-o"
    return ",".join(
        [f"type=volume,source={source},destination=/data,volume-driver={driver}"]
        + [f"volume-opt={option}" for option in options]
    )


def create_service(docker: Dockerd, name: str, mount: str, script: str, *flags: str) -> None:
    docker.run(
        "service", "create", "--detach", "--no-resolve-image", "--name", name,
        "--mount", mount, *flags, docker.image, "sh", "-c", script,
    )  # fmt: skip


def running_tasks(docker: Dockerd, service: str) -> list[str]:
    out = docker.run(
        "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.ID}} {{.CurrentState}}",
    ).stdout  # fmt: skip
    return [line.split()[0] for line in out.splitlines() if " Running " in f" {line} "]


def test_service_task_replaced_reads_the_file(
    swarm: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = swarm
    remote_dir = sshd.data_dir / "svc"
    remote_dir.mkdir()
    service = unique("svc")
    # The first task writes `first`; every task copies it to a file named after itself.
    script = (
        'test -f /data/first || echo "written by $HOSTNAME" > /data/first;'
        ' cat /data/first > "/data/read-by-$HOSTNAME"; exec sleep 3600'
    )
    create_service(
        docker, service, volume_mount(daemon.driver, sshd, unique("v"), remote_dir), script
    )
    wait_until(
        "the first task wrote its file",
        # Whole: the file exists (empty) on the server before its line is written.
        lambda: (
            (remote_dir / "first").exists() and (remote_dir / "first").read_text().endswith("\n")
        ),
        lambda: service_tasks(docker),
    )
    first = (remote_dir / "first").read_text()
    wait_until(
        "the first task is running",
        lambda: len(running_tasks(docker, service)) == 1,
        lambda: service_tasks(docker),
    )
    first_tasks = running_tasks(docker, service)

    docker.run("service", "update", "--force", "--detach", service)

    def a_second_task_read_it() -> bool:
        readers = list(remote_dir.glob("read-by-*"))
        return len(readers) == 2 and all(r.read_text() == first for r in readers)

    wait_until(
        "a replacing task read the first task's file",
        a_second_task_read_it,
        lambda: service_tasks(docker),
    )
    assert running_tasks(docker, service) != first_tasks


def test_three_replicas_write_to_one_remote_path(
    swarm: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = swarm
    remote_dir = sshd.data_dir / "replicas"
    remote_dir.mkdir()
    service = unique("rep")
    create_service(
        docker, service, volume_mount(daemon.driver, sshd, unique("v"), remote_dir),
        'echo "$HOSTNAME" > "/data/$HOSTNAME"; exec sleep 3600', "--replicas", "3",
    )  # fmt: skip

    def three_files() -> bool:
        files = list(remote_dir.iterdir())
        return len(files) == 3 and all(f.read_text() == f"{f.name}\n" for f in files)

    wait_until(
        "each of the 3 replicas wrote its own file", three_files, lambda: service_tasks(docker)
    )
    # A task writes its file before swarm records it as Running: poll for the state.
    wait_until(
        "the 3 replicas are running",
        lambda: len(running_tasks(docker, service)) == 3,
        lambda: service_tasks(docker),
    )


def test_stack_with_a_cloudvol_volume(
    swarm: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, tmp_path: Path
) -> None:
    docker, daemon = swarm
    remote_dir = sshd.data_dir / "stack"
    remote_dir.mkdir()
    options = dict(o.split("=", 1) for o in sshd.volume_options(remote_dir)[1::2])
    # JSON is YAML: the compose file of the README's example, with this test's values.
    compose = {
        "version": "3.8",
        "services": {
            "app": {
                "image": docker.image,
                "command": ["sh", "-c", "echo from-the-stack > /data/stack.txt; exec sleep 3600"],
                "volumes": ["data:/data"],
            }
        },
        "volumes": {"data": {"driver": daemon.driver, "driver_opts": options}},
    }
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(json.dumps(compose, indent=2))
    stack = unique("st")

    docker.run(
        "stack", "deploy", "--detach=true", "--resolve-image", "never", "-c", str(compose_file),
        stack,
    )  # fmt: skip

    wait_until(
        "the stack's task wrote its file",
        lambda: (
            (remote_dir / "stack.txt").exists()
            and (remote_dir / "stack.txt").read_text() == "from-the-stack\n"
        ),
        lambda: service_tasks(docker),
    )
    volume = json.loads(docker.run("volume", "inspect", f"{stack}_data").stdout)[0]
    assert volume["Driver"] == daemon.driver
