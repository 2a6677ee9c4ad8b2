"""S3 and memory volumes through the real docker CLI, a real dockerd, FUSE, and
moto's S3 server on loopback; and a remote named in an rclone config file."""

from __future__ import annotations

import uuid
from pathlib import Path

from adapters.storage.obscure import obscure
from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.docker_env import create, docker_env, unique
from tests.integration.fixtures.dockerd import Dockerd, dockerd
from tests.integration.fixtures.moto_s3 import MotoServer, moto_s3
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "docker_env", "dockerd", "moto_s3", "sshd"]  # used by name


def s3_opts(server: MotoServer, path: str) -> list[str]:
    return [
        "-o", "type=s3",
        "-o", f"s3-endpoint={server.endpoint}",
        "-o", f"s3-access-key-id={server.access_key_id}",
        "-o", f"s3-secret-access-key={server.secret_access_key}",
        "-o", "s3-provider=Other",
        "-o", f"path={path}",
    ]  # fmt: skip


def object_body(server: MotoServer, bucket: str, key: str) -> bytes:
    body: bytes = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(server: MotoServer, bucket: str) -> list[str]:
    page = server.client().list_objects_v2(Bucket=bucket)
    return sorted(c["Key"] for c in page.get("Contents", []))


def test_s3_volume_user_story(
    docker_env: tuple[Dockerd, CloudvolDaemon], moto_s3: MotoServer
) -> None:
    docker, daemon = docker_env
    bucket = f"vol-{uuid.uuid4().hex[:10]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    moto_s3.client().put_object(Bucket=bucket, Key="before.txt", Body=b"from the bucket\n")
    name = unique("s3vol")
    create(docker, daemon, name, *s3_opts(moto_s3, bucket))

    out = docker.in_container(
        name,
        "cat /data/before.txt; mkdir /data/d; echo hi > /data/d/x; cat /data/d/x; ls /data",
    )
    assert out == "from the bucket\nhi\nbefore.txt\nd\n"
    assert object_body(moto_s3, bucket, "d/x") == b"hi\n"
    assert keys(moto_s3, bucket) == ["before.txt", "d/", "d/x"]  # d/ is the directory marker

    # A second container (a new mount) sees what the first one left, empty dirs too.
    out = docker.in_container(name, "mkdir /data/empty; ls /data; cat /data/d/x")
    assert out == "before.txt\nd\nempty\nhi\n"
    assert docker.in_container(name, "ls /data") == "before.txt\nd\nempty\n"

    docker.run("volume", "rm", name)
    assert "d/x" in keys(moto_s3, bucket), "removing a volume never touches the remote data"


def test_s3_volume_below_a_prefix_via_connection_string(
    docker_env: tuple[Dockerd, CloudvolDaemon], moto_s3: MotoServer
) -> None:
    docker, daemon = docker_env
    bucket = f"cs-{uuid.uuid4().hex[:10]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    remote = (
        f":s3,provider=Minio,endpoint='{moto_s3.endpoint}',access_key_id={moto_s3.access_key_id},"
        f"secret_access_key={moto_s3.secret_access_key}:{bucket}/some/prefix"
    )
    name = unique("s3cs")
    create(docker, daemon, name, "-o", f"remote={remote}")
    docker.in_container(name, "echo deep > /data/f")
    assert object_body(moto_s3, bucket, "some/prefix/f") == b"deep\n"


def test_s3_create_fails_with_the_cause(
    docker_env: tuple[Dockerd, CloudvolDaemon], moto_s3: MotoServer
) -> None:
    docker, daemon = docker_env
    name = unique("nob")
    result = docker.run(
        "volume", "create", "-d", daemon.driver, *s3_opts(moto_s3, "no-such-bucket"), name,
        check=False, timeout=130,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'bucket "no-such-bucket" does not exist' in result.stderr
    assert moto_s3.secret_access_key not in result.stderr
    assert moto_s3.secret_access_key not in daemon.log_tail(1_000_000)
    assert name not in docker.run("volume", "ls", "-q").stdout.split()


def test_memory_volume(docker_env: tuple[Dockerd, CloudvolDaemon]) -> None:
    docker, daemon = docker_env
    name = unique("mem")
    create(docker, daemon, name, "-o", "type=memory")
    out = docker.in_container(
        name, "mkdir /data/d; echo in-memory > /data/d/f; cat /data/d/f; ls /data"
    )
    assert out == "in-memory\nd\n"


def test_unknown_type_lists_the_available_ones(
    docker_env: tuple[Dockerd, CloudvolDaemon],
) -> None:
    docker, daemon = docker_env
    result = docker.run(
        "volume", "create", "-d", daemon.driver, "-o", "type=drive", unique("drv"), check=False
    )  # fmt: skip
    assert result.returncode != 0
    assert 'unknown backend type "drive" (available:' in result.stderr
    assert "memory" in result.stderr and "s3" in result.stderr


def test_remotes_from_an_rclone_config_file(
    docker_env: tuple[Dockerd, CloudvolDaemon],
    moto_s3: MotoServer,
    sshd: SshdServer,
    tmp_path: Path,
) -> None:
    docker, daemon = docker_env
    bucket = f"conf-{uuid.uuid4().hex[:10]}"
    moto_s3.client().create_bucket(Bucket=bucket)
    (sshd.data_dir / "srv").mkdir()
    config = tmp_path / "rclone.conf"
    # As `rclone config` writes it; the sftp password is obscured (and unused:
    # the key authenticates), shell_type is what rclone records by itself.
    config.write_text(
        f"[objects]\ntype = s3\nprovider = Other\nenv_auth = false\n"
        f"access_key_id = {moto_s3.access_key_id}\n"
        f"secret_access_key = {moto_s3.secret_access_key}\n"
        f"endpoint = {moto_s3.endpoint}\n\n"
        f"[files]\ntype = sftp\nhost = {sshd.host}\nport = {sshd.port}\n"
        f"user = {sshd.user}\nkey_file = {sshd.key_file}\npass = {obscure('unused')}\n"
        "shell_type = unix\nmd5sum_command = md5sum\n"
    )
    daemon.stop()
    daemon.start("--config", str(config))

    create(docker, daemon, "confs3", "-o", f"remote=objects:{bucket}/dir")
    create(docker, daemon, "confsftp", "-o", f"remote=files:{sshd.data_dir}/srv")
    docker.in_container("confs3", "echo s3 > /data/f")
    docker.in_container("confsftp", "echo sftp > /data/f")
    assert object_body(moto_s3, bucket, "dir/f") == b"s3\n"
    assert (sshd.data_dir / "srv" / "f").read_text() == "sftp\n"

    missing = docker.run(
        "volume", "create", "-d", daemon.driver, "-o", "remote=nowhere:x", "nope", check=False
    )  # fmt: skip
    assert missing.returncode != 0
    assert f'remote "nowhere": not found in config file {config}' in missing.stderr
