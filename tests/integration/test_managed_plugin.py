"""cloudvol installed as a Docker managed plugin (`make plugin`), driven through the
docker CLI: plugin create/enable/set/disable, SFTP volumes, the config directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.docker_env import unique
from tests.integration.fixtures.managed_plugin import (
    ManagedPlugin,
    managed_plugin,
    plugin_dir,
    plugin_dockerd,
)
from tests.integration.fixtures.polling import wait_until
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["managed_plugin", "plugin_dir", "plugin_dockerd", "sshd"]  # fixtures used by name

IN_PLUGIN_CONFIG = "/data/config"  # where the plugin sees ManagedPlugin.config_dir
# What a test that changes the plugin's args sets them back to. Not "": Docker makes
# `args=` one empty argument.
DEFAULT_ARGS = "--vfs-cache-mode off"
LOG_CHARS = 30_000  # of each log, printed for a failed test


@pytest.fixture(autouse=True)
def plugin_logs_shown_on_failure(managed_plugin: ManagedPlugin) -> Iterator[None]:
    """Prints, after each test, what the plugin logged during it (Docker writes the
    plugin's lines into its own log) and its workers' logs: pytest shows them only
    for a test that failed."""
    dockerd_log = Path(managed_plugin.docker.socket).parent / "dockerd.log"
    start = dockerd_log.stat().st_size
    yield
    with open(dockerd_log, "rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    print("\n".join(line for line in lines if "plugin=" in line)[-LOG_CHARS:])
    for log in sorted((managed_plugin.cache_dir / "workers").glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-LOG_CHARS:]}")


def key_in_config_dir(plugin: ManagedPlugin, sshd: SshdServer) -> str:
    """The server's client key, copied where the plugin can read it; its path there."""
    key = f"key-{sshd.port}"
    shutil.copy2(sshd.key_file, plugin.config_dir / key)
    return f"{IN_PLUGIN_CONFIG}/{key}"


def sftp_volume(plugin: ManagedPlugin, sshd: SshdServer, remote_name: str) -> tuple[str, Path]:
    """A new volume of the plugin on a new directory `remote_name` of the SFTP server:
    the volume's name and the directory."""
    remote_dir = sshd.data_dir / remote_name
    remote_dir.mkdir()
    key = key_in_config_dir(plugin, sshd)
    options = [
        f"sftp-key-file={key}" if o.startswith("sftp-key-file=") else o
        for o in sshd.volume_options(remote_dir)
    ]
    name = unique(remote_name)
    plugin.docker.run("volume", "create", "-d", plugin.name, *options, name)
    return name, remote_dir


def wait_for_content(path: Path, content: str) -> None:
    wait_until(
        f"{path} holds {content!r}",
        lambda: path.exists() and path.read_text() == content,
        timeout=60,
    )


def restart_with_args(plugin: ManagedPlugin, args: str) -> None:
    plugin.disable()
    plugin.set(f"args={args}")
    plugin.enable()


def test_sftp_volume_through_the_plugin(managed_plugin: ManagedPlugin, sshd: SshdServer) -> None:
    docker = managed_plugin.docker
    assert managed_plugin.enabled()
    name, remote_dir = sftp_volume(managed_plugin, sshd, "plain")

    docker.in_container(name, "echo from-the-plugin > /data/x")
    assert docker.in_container(name, "cat /data/x") == "from-the-plugin\n"
    assert (remote_dir / "x").read_text() == "from-the-plugin\n"


def test_plugin_args_change_the_defaults(managed_plugin: ManagedPlugin, sshd: SshdServer) -> None:
    docker = managed_plugin.docker
    restart_with_args(managed_plugin, "--vfs-cache-mode writes -v")
    try:
        name, remote_dir = sftp_volume(managed_plugin, sshd, "args")
        docker.in_container(name, "echo cached > /data/y")

        # Mode `writes` (not the default `off`) wrote the file through the on-disk cache,
        # which lives on the plugin's cache mount.
        assert (managed_plugin.cache_dir / "vfs" / name / "data" / "y").read_text() == "cached\n"
        wait_for_content(remote_dir / "y", "cached\n")
    finally:
        restart_with_args(managed_plugin, DEFAULT_ARGS)


def test_disable_enable_keeps_volumes_and_pending_uploads(
    managed_plugin: ManagedPlugin, sshd: SshdServer
) -> None:
    docker = managed_plugin.docker
    # Uploads wait ten minutes while the volume is mounted, so the one below is surely
    # pending at disable.
    restart_with_args(managed_plugin, "--vfs-cache-mode writes --vfs-write-back 10m")
    try:
        name, remote_dir = sftp_volume(managed_plugin, sshd, "restart")
        holder = docker.start_holder(name, unique("holder"))
        docker.run("exec", holder, "sh", "-c", "echo pending > /data/z")
        assert not (remote_dir / "z").exists()

        managed_plugin.disable()
        assert (managed_plugin.cache_dir / "docker-plugin.state").exists()
        managed_plugin.set(f"args={DEFAULT_ARGS}")
        managed_plugin.enable()
        docker.run("rm", "-f", holder)  # its mount went with the disabled plugin

        assert name in docker.run("volume", "ls", "-q").stdout.split()
        wait_for_content(remote_dir / "z", "pending\n")
        assert docker.in_container(name, "cat /data/z") == "pending\n"
    finally:
        restart_with_args(managed_plugin, DEFAULT_ARGS)


def test_volume_from_rclone_conf_in_the_config_dir(
    managed_plugin: ManagedPlugin, sshd: SshdServer
) -> None:
    docker = managed_plugin.docker
    remote_dir = sshd.data_dir / "named"
    remote_dir.mkdir()
    key = key_in_config_dir(managed_plugin, sshd)
    (managed_plugin.config_dir / "rclone.conf").write_text(
        "[backup]\n"
        "type = sftp\n"
        f"host = {sshd.host}\n"
        f"port = {sshd.port}\n"
        f"user = {sshd.user}\n"
        f"key_file = {key}\n"
    )
    name = unique("named")
    docker.run(
        "volume", "create", "-d", managed_plugin.name, "-o", f"remote=backup:{remote_dir}", name
    )

    docker.in_container(name, "echo named > /data/n")
    assert (remote_dir / "n").read_text() == "named\n"
