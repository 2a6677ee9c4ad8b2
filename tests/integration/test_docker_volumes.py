"""The user story of the walking skeleton, through the real docker CLI, a real
dockerd, a real sshd and real FUSE mounts."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.fixtures.cloudvol_daemon import (
    CloudvolDaemon,
    cloudvol_daemon,
    fuse_mounts_under,
)
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "sshd"]  # fixtures used by name


def test_sftp_volume_user_story(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    remote_dir = sshd.data_dir / "srv-data"
    remote_dir.mkdir()
    name = unique("vol")
    create(docker, daemon, name, *sshd.volume_options(remote_dir))

    assert docker.in_container(name, "echo hi > /data/x; cat /data/x") == "hi\n"
    assert (remote_dir / "x").read_text() == "hi\n"

    docker.run("volume", "rm", name)
    assert name not in docker.run("volume", "ls", "-q").stdout.split()
    assert not (daemon.base_dir / name).exists()
    assert (remote_dir / "x").read_text() == "hi\n", (
        "removing a volume never touches the remote data"
    )


def test_local_volume(docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path) -> None:
    docker, daemon = docker_env
    backing = tmp_path / "backing"
    backing.mkdir()
    (backing / "before.txt").write_text("from the host\n")
    name = unique("loc")
    create(docker, daemon, name, "-o", f"remote={backing}")

    out = docker.in_container(
        name, "cat /data/before.txt; mkdir /data/d; echo hi > /data/d/x; ls /data/d"
    )
    assert out == "from the host\nx\n"
    assert (backing / "d" / "x").read_text() == "hi\n"


def test_connection_string_volume(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    remote_dir = sshd.data_dir / "cs"
    remote_dir.mkdir()
    name = unique("cs")
    remote = (
        f":sftp,host={sshd.host},port={sshd.port},user={sshd.user},"
        f"key_file={sshd.key_file}:{remote_dir}"
    )
    create(docker, daemon, name, "-o", f"remote={remote}")

    docker.in_container(name, "echo via-cs > /data/x")
    assert (remote_dir / "x").read_text() == "via-cs\n"
    info = json.loads(docker.run("volume", "inspect", name).stdout)[0]
    assert info["Driver"] == daemon.driver
    assert info["Mountpoint"] == str(daemon.base_dir / name)


def test_two_containers_share_a_volume_and_rm_is_refused_while_in_use(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    name = unique("shared")
    create(docker, daemon, name, *sshd.volume_options(sshd.data_dir))
    holder = unique("holder")
    docker.start_holder(name, holder)

    docker.in_container(name, "echo second > /data/from-second")
    assert docker.run("exec", holder, "cat", "/data/from-second").stdout == "second\n"
    # The second container's exit must not unmount the volume under the first.
    assert fuse_mounts_under(daemon.base_dir) == [str(daemon.base_dir / name)]

    refused = docker.run("volume", "rm", name, check=False)
    assert refused.returncode != 0
    assert "in use" in refused.stderr

    docker.run("rm", "-f", holder)
    assert fuse_mounts_under(daemon.base_dir) == []
    docker.run("volume", "rm", name)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("vfs-cache-mode=sometimes", "vfs-cache-mode"),
        ("dir-cache-time=soon", "dir-cache-time"),
        ("sftp-bogus=1", 'unsupported backend option "sftp-bogus"'),
        ("metadata-include=k=v", "metadata-include: not supported yet"),
        ("allow-idmap=true", "allow-idmap: not supported: id-mapped FUSE mounts need libfuse"),
        ("include=a[b", "include: mismatched '['"),
    ],
)
def test_bad_option_fails_create_with_its_name(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, option: str, expected: str
) -> None:
    docker, daemon = docker_env
    name = unique("bad")
    result = docker.run(
        "volume",
        "create",
        "-d",
        daemon.driver,
        *sshd.volume_options(sshd.data_dir),
        "-o",
        option,
        name,
        check=False,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert name not in docker.run("volume", "ls", "-q").stdout.split()
    assert not (daemon.base_dir / name).exists()


def test_unreachable_remote_fails_create_with_the_cause(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    name = unique("down")
    opts = sshd.volume_options(sshd.data_dir)
    opts[opts.index(f"sftp-port={sshd.port}")] = f"sftp-port={closed_port}"
    result = docker.run(
        "volume", "create", "-d", daemon.driver, *opts, name, check=False, timeout=130
    )
    assert result.returncode != 0
    assert "refused" in result.stderr.lower()


def test_state_brings_volumes_back_after_sigkill(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    idle, busy = unique("idle"), unique("busy")
    remote_dir = sshd.data_dir / "keep"
    remote_dir.mkdir()
    create(docker, daemon, idle, *sshd.volume_options(remote_dir))
    create(docker, daemon, busy, *sshd.volume_options(remote_dir))
    holder = unique("holder")
    docker.start_holder(busy, holder)

    state = json.loads(daemon.state_file.read_text())
    assert {v["name"] for v in state} == {idle, busy}
    assert oct(daemon.state_file.stat().st_mode & 0o777) == "0o600"

    daemon.kill()
    daemon.start()

    assert {idle, busy} <= set(docker.run("volume", "ls", "-q").stdout.split())
    # The running container never noticed: its mount is still served.
    docker.run("exec", holder, "sh", "-c", "echo after-restart > /data/r")
    assert (remote_dir / "r").read_text() == "after-restart\n"
    # The restored volume kept its path (rclone drops it on restore).
    assert docker.in_container(idle, "cat /data/r") == "after-restart\n"

    docker.run("rm", "-f", holder)
    assert fuse_mounts_under(daemon.base_dir) == []


def test_clean_stop_unmounts_and_keeps_volumes(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer
) -> None:
    docker, daemon = docker_env
    name = unique("stop")
    create(docker, daemon, name, *sshd.volume_options(sshd.data_dir))
    holder = unique("holder")
    docker.start_holder(name, holder)

    assert daemon.stop() == 0
    assert fuse_mounts_under(daemon.base_dir) == []
    assert not daemon.socket.exists()
    state = json.loads(daemon.state_file.read_text())
    assert [(v["name"], v["mounts"]) for v in state] == [(name, [])]
    # Docker's own Unmount call then finds no plugin; it still removes the container.
    docker.run("rm", "-f", holder, check=False)
    daemon.start()
    assert name in docker.run("volume", "ls", "-q").stdout.split()


def test_bad_volume_name_creates_nothing_outside_base_dir(
    docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path
) -> None:
    docker, daemon = docker_env
    backing = tmp_path / "b"
    backing.mkdir()
    escaped = daemon.base_dir.parent / "escaped"
    result = docker.run(
        "volume",
        "create",
        "-d",
        daemon.driver,
        "-o",
        f"remote={backing}",
        "../escaped",
        check=False,
    )
    assert result.returncode != 0
    # Refused by cloudvol itself: Docker passed the name on to the plugin.
    assert "VolumeDriver.Create: invalid volume name '../escaped'" in result.stderr
    assert 'hold no ".."' in result.stderr
    assert not escaped.exists()
    assert "../escaped" not in docker.run("volume", "ls", "-q").stdout.split()


def test_sighup_makes_mounted_volumes_reread_their_directories(
    docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path
) -> None:
    docker, daemon = docker_env
    backing = tmp_path / "backing"
    backing.mkdir()
    name = unique("hup")
    create(docker, daemon, name, "-o", f"remote={backing}", "-o", "dir-cache-time=1h")
    holder = docker.start_holder(name, unique("holder"))
    assert docker.run("exec", holder, "ls", "/data").stdout == ""
    (backing / "behind-its-back.txt").write_text("new")
    # Listed an hour ago as far as the mount knows: the new file stays hidden...
    assert docker.run("exec", holder, "ls", "/data").stdout == ""

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    # ...until SIGHUP makes every worker forget its directory cache (as rclone does).
    deadline = time.monotonic() + 10
    while docker.run("exec", holder, "ls", "/data").stdout != "behind-its-back.txt\n":
        assert time.monotonic() < deadline, "the directory was not re-read after SIGHUP"
        time.sleep(0.1)
    assert "forgetting the directory caches" in daemon.log_tail()
    docker.run("rm", "-f", holder)
