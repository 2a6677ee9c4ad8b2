"""Secrets stay secret: passwords, inline keys and secret keys given to the real
daemon at -vv, in options and in connection strings, on calls that succeed and calls
that fail, appear in no answer, no log line (daemon or worker) and no file of the
cache directory; the one file that must hold them, the state file, is 0600."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import httpx

from adapters.storage.obscure import obscure
from tests.integration.fixtures.cloudvol_daemon import CloudvolDaemon, cloudvol_daemon
from tests.integration.fixtures.moto_s3 import MotoServer, moto_s3_auth
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["cloudvol_daemon", "moto_s3_auth", "sshd"]  # fixtures used by name


def test_no_secret_in_answers_logs_or_cache_files(
    cloudvol_daemon: CloudvolDaemon, moto_s3_auth: MotoServer, sshd: SshdServer, tmp_path: Path
) -> None:
    daemon, s3 = cloudvol_daemon, moto_s3_auth
    password, inline_password = f"pw-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    pem = f"-----BEGIN OPENSSH PRIVATE KEY-----\nkey-{uuid.uuid4().hex}\n"
    secrets = [password, obscure(password), inline_password, pem.split("\n")[1],
               s3.secret_access_key]  # fmt: skip
    bucket = f"sec-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=bucket)
    s3_opts = {
        "type": "s3", "s3-provider": "Other", "s3-endpoint": s3.endpoint,
        "s3-access-key-id": s3.access_key_id, "s3-secret-access-key": s3.secret_access_key,
    }  # fmt: skip
    sftp_opts = {"type": "sftp", "sftp-host": sshd.host, "sftp-port": str(sshd.port),
                 "sftp-user": sshd.user, "path": "/tmp"}  # fmt: skip
    answers: list[str] = []
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://cloudvol", timeout=120) as client:

        def call(endpoint: str, **body: object) -> int:
            response = client.post(f"/VolumeDriver.{endpoint}", content=json.dumps(body))
            answers.append(response.text)
            return response.status_code

        # Refused by the server, or not a key at all: each fails, with its cause.
        assert call("Create", Name="plain", Opts={**sftp_opts, "sftp-pass": password}) != 200
        assert (
            call("Create", Name="obsc", Opts={**sftp_opts, "sftp-pass": obscure(password)}) != 200
        )
        assert call("Create", Name="pem", Opts={**sftp_opts, "sftp-key-pem": pem}) != 200
        remote = (f":sftp,host={sshd.host},port={sshd.port},user={sshd.user},"
                  f"pass={obscure(inline_password)}:/tmp")  # fmt: skip
        assert call("Create", Name="inline", Opts={"remote": remote}) != 200
        assert call("Create", Name="nob", Opts={**s3_opts, "path": "no-such-bucket"}) != 200
        # A volume that works, through its whole life.
        assert call("Create", Name="good", Opts={**s3_opts, "path": bucket}) == 200
        assert call("Get", Name="good") == 200
        assert call("List") == 200
        assert call("Mount", Name="good", ID="c1") == 200
        (daemon.base_dir / "good" / "f").write_text("data")
        assert call("Unmount", Name="good", ID="c1") == 200
        assert call("Remove", Name="good") == 200

    assert any("good" in a for a in answers)  # the answers were recorded
    logs = daemon.log_file.read_text()
    assert "VolumeDriver.Create request" in logs  # -vv: the requests are logged, redacted
    files = {path: path.read_bytes() for path in daemon.cache_dir.rglob("*") if path.is_file()}
    state = files.pop(daemon.state_file, b"")
    for secret in secrets:
        assert not [a for a in answers if secret in a], secret
        assert secret not in logs, secret
        assert not [p for p, data in files.items() if secret.encode() in data], secret
    assert stat.S_IMODE(daemon.state_file.stat().st_mode) == 0o600
    assert s3.secret_access_key.encode() not in state  # the volume was removed
