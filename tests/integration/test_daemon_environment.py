"""The daemon configured from its environment alone, as a managed plugin or a
systemd unit configures it: flags as CLOUDVOL_<FLAG>, remotes as
RCLONE_CONFIG_<NAME>_<KEY>, and an encrypted rclone config file whose password is
in CLOUDVOL_CONFIG_PASS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, running_daemon
from tests.integration.fixtures.docker_env import create, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.unit.test_encrypted_config import rclone_encrypted

__all__ = ["dockerd", "sshd"]  # fixtures used by name

PASSWORD = "plugin config password"


@pytest.fixture
def daemon_from_environment(
    tmp_path: Path, sshd: SshdServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CloudvolDaemon]:
    config = tmp_path / "rclone.conf"
    config.write_text(
        rclone_encrypted(
            f"[vault]\ntype = sftp\nhost = {sshd.host}\nport = {sshd.port}\n"
            f"user = {sshd.user}\nkey_file = {sshd.key_file}\n",
            PASSWORD,
        )
    )
    environment = {
        "CLOUDVOL_VFS_CACHE_MODE": "writes",
        "CLOUDVOL_CONFIG": str(config),
        "CLOUDVOL_CONFIG_PASS": PASSWORD,
        "RCLONE_CONFIG_ENVSFTP_TYPE": "sftp",
        "RCLONE_CONFIG_ENVSFTP_HOST": sshd.host,
        "RCLONE_CONFIG_ENVSFTP_PORT": str(sshd.port),
        "RCLONE_CONFIG_ENVSFTP_USER": sshd.user,
        "RCLONE_CONFIG_ENVSFTP_KEY_FILE": str(sshd.key_file),
    }
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)  # the daemon and its workers inherit them
    with running_daemon(tmp_path, f"cloudvolenv{os.getpid()}") as daemon:
        yield daemon


def test_remotes_and_defaults_come_from_the_environment(
    daemon_from_environment: CloudvolDaemon, dockerd: Dockerd, sshd: SshdServer
) -> None:
    daemon = daemon_from_environment
    remote_dir = sshd.data_dir / unique("env")
    remote_dir.mkdir()
    from_env, from_vault = unique("envvol"), unique("vaultvol")
    create(dockerd, daemon, from_env, "-o", f"remote=envsftp:{remote_dir}")
    create(dockerd, daemon, from_vault, "-o", f"remote=vault:{remote_dir}")
    try:
        dockerd.in_container(from_env, "echo from-env > /data/a")
        # The default cache mode came from CLOUDVOL_VFS_CACHE_MODE: the file went
        # through the volume's file cache, which mode off never does.
        assert list((daemon.cache_dir / "vfs" / from_env).rglob("a")), "no cached copy"
        assert dockerd.in_container(from_vault, "cat /data/a") == "from-env\n"
        assert (remote_dir / "a").read_text() == "from-env\n"
    finally:
        dockerd.run("volume", "rm", "-f", from_env, from_vault, check=False)
