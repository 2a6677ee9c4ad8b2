"""Issue 13's remotes as Docker volumes, through the real docker CLI, a real
dockerd, FUSE and real servers on loopback: crypt over SFTP from an unchanged
rclone.conf (read and written by rclone too), webdav, ftp, smb, http, alias and
union; and the errors Create gives."""

from __future__ import annotations

import subprocess
from pathlib import Path

from adapters.storage.obscure import obscure
from tests.integration.fixtures.azurite import ACCOUNT, KEY, Azurite, azurite
from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.file_servers import (
    FileServer,
    ftp_server,
    http_server,
    smb_server,
    webdav_server,
)
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = [
    "azurite",
    "cloudvol_daemon", "docker_env", "dockerd", "ftp_server", "http_server", "smb_server",
    "sshd", "webdav_server",
]  # fmt: skip  # used by name

PASSWORD = "volume crypt password"


def rclone(config: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["rclone", "--config", str(config), *args],
        input=stdin, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_crypt_over_sftp_from_an_rclone_config(
    docker_env: tuple[Dockerd, CloudvolDaemon], sshd: SshdServer, tmp_path: Path
) -> None:
    docker, daemon = docker_env
    (sshd.data_dir / "enc").mkdir()
    config = tmp_path / "rclone.conf"
    config.write_text(
        f"[files]\ntype = sftp\nhost = {sshd.host}\nport = {sshd.port}\nuser = {sshd.user}\n"
        f"key_file = {sshd.key_file}\nknown_hosts_file = {sshd.known_hosts_file}\n\n"
        f"[secret]\ntype = crypt\nremote = files:{sshd.data_dir}/enc\n"
        f"password = {obscure(PASSWORD)}\nfilename_encoding = base32768\n"
    )
    rclone(config, "rcat", "secret:docs/from-rclone.txt", stdin=b"written by rclone\n")
    daemon.stop()
    daemon.start("--config", str(config))

    create(docker, daemon, "cryptvol", "-o", "remote=secret:docs")
    out = docker.in_container(
        "cryptvol", "cat /data/from-rclone.txt; echo from cloudvol > /data/new.txt; ls /data"
    )
    assert out == "written by rclone\nfrom-rclone.txt\nnew.txt\n"
    assert rclone(config, "cat", "secret:docs/new.txt") == b"from cloudvol\n"
    stored = [p.name for p in (sshd.data_dir / "enc").rglob("*")]
    assert stored and not any("txt" in name or "docs" in name for name in stored)

    # The same files through the VFS cache (full mode), and sizes as plain sizes.
    create(docker, daemon, "cryptfull", "-o", "remote=secret:docs", "-o", "vfs-cache-mode=full")
    out = docker.in_container("cryptfull", "wc -c < /data/new.txt; cat /data/new.txt")
    assert out.split() == ["14", "from", "cloudvol"]

    wrong = docker.run(
        "volume", "create", "-d", daemon.driver, "-o", "remote=secret,password="
        f"{obscure('wrong guess')}:docs", unique("bad"), check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert "do not decrypt with this password" in wrong.stderr
    assert "wrong guess" not in wrong.stderr and PASSWORD not in daemon.log_tail(1_000_000)


def test_webdav_volume(
    docker_env: tuple[Dockerd, CloudvolDaemon], webdav_server: FileServer
) -> None:
    docker, daemon = docker_env
    (webdav_server.data_dir / "before.txt").write_text("on the server\n")
    name = unique("dav")
    create(
        docker, daemon, name, "-o", "type=webdav", "-o", f"webdav-url={webdav_server.url}",
        "-o", f"webdav-user={webdav_server.user}",
        "-o", f"webdav-pass={webdav_server.obscured_password}",
    )  # fmt: skip
    out = docker.in_container(name, "cat /data/before.txt; mkdir /data/d; echo hi > /data/d/x")
    assert out == "on the server\n"
    assert (webdav_server.data_dir / "d" / "x").read_text() == "hi\n"


def test_ftp_volume_from_a_connection_string(
    docker_env: tuple[Dockerd, CloudvolDaemon], ftp_server: FileServer
) -> None:
    docker, daemon = docker_env
    name = unique("ftp")
    remote = (
        f":ftp,host={ftp_server.host},port={ftp_server.port},user={ftp_server.user},"
        f"pass={ftp_server.obscured_password}:"
    )
    create(docker, daemon, name, "-o", f"remote={remote}")
    assert docker.in_container(name, "echo over ftp > /data/f; cat /data/f") == "over ftp\n"
    assert (ftp_server.data_dir / "f").read_text() == "over ftp\n"


def test_smb_volume(docker_env: tuple[Dockerd, CloudvolDaemon], smb_server: FileServer) -> None:
    docker, daemon = docker_env
    name = unique("smb")
    create(
        docker, daemon, name, "-o", "type=smb", "-o", f"smb-host={smb_server.host}",
        "-o", f"smb-port={smb_server.port}", "-o", f"smb-user={smb_server.user}",
        "-o", f"smb-pass={smb_server.obscured_password}", "-o", "path=share",
    )  # fmt: skip
    assert docker.in_container(name, "echo over smb > /data/f; cat /data/f") == "over smb\n"
    assert (smb_server.data_dir / "f").read_text() == "over smb\n"


def test_http_volume_is_read_only(
    docker_env: tuple[Dockerd, CloudvolDaemon], http_server: FileServer
) -> None:
    docker, daemon = docker_env
    (http_server.data_dir / "page.txt").write_text("static\n")
    name = unique("http")
    create(docker, daemon, name, "-o", "type=http", "-o", f"http-url={http_server.url}")
    out = docker.in_container(
        name, "ls -l /data; cat /data/page.txt; (echo x > /data/new) 2>&1; true"
    ).splitlines()
    assert " 7 " in out[1] and out[1].endswith(" page.txt")  # the size the server sent
    assert out[2] == "static"
    assert "Read-only file system" in out[3]
    assert not (http_server.data_dir / "new").exists()


def test_azureblob_volume(docker_env: tuple[Dockerd, CloudvolDaemon], azurite: Azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    docker, daemon = docker_env
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container("vols")
    container.upload_blob("before.txt", b"in the container\n")
    name = unique("az")
    create(
        docker, daemon, name, "-o", "type=azureblob", "-o", f"azureblob-account={ACCOUNT}",
        "-o", f"azureblob-key={KEY}", "-o", f"azureblob-endpoint={azurite.endpoint}",
        "-o", "path=vols/dir",
    )  # fmt: skip
    create(docker, daemon, name + "top", "-o", f"remote=:azureblob,account={ACCOUNT},"
           f"key='{KEY}',endpoint='{azurite.endpoint}':vols")  # fmt: skip
    assert docker.in_container(name, "echo blob > /data/f; cat /data/f") == "blob\n"
    assert container.download_blob("dir/f").readall() == b"blob\n"
    assert docker.in_container(name + "top", "cat /data/before.txt") == "in the container\n"


def test_alias_and_union_volumes(
    docker_env: tuple[Dockerd, CloudvolDaemon], tmp_path: Path
) -> None:
    docker, daemon = docker_env
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "lower.txt").write_text("from the second upstream\n")
    union = unique("union")
    create(docker, daemon, union, "-o", "type=union", "-o", f"union-upstreams={first} {second}")
    out = docker.in_container(union, "cat /data/lower.txt; echo new > /data/upper.txt; ls /data")
    assert out == "from the second upstream\nlower.txt\nupper.txt\n"
    assert (first / "upper.txt").read_text() == "new\n"  # epmfs: the first upstream

    alias = unique("alias")
    create(docker, daemon, alias, "-o", f"remote=:alias,remote='{tmp_path}':second")
    assert docker.in_container(alias, "cat /data/lower.txt") == "from the second upstream\n"


def test_types_cloudvol_lacks_are_refused_with_the_list(
    docker_env: tuple[Dockerd, CloudvolDaemon],
) -> None:
    docker, daemon = docker_env
    for wanted in ("dropbox", "onedrive"):
        result = docker.run(
            "volume", "create", "-d", daemon.driver, "-o", f"type={wanted}", unique("no"),
            check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert f'unknown backend type "{wanted}" (available:' in result.stderr
        for available in ("crypt", "webdav", "ftp", "smb", "azureblob", "union", "alias"):
            assert available in result.stderr
