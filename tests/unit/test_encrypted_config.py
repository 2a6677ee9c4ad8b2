"""Config files encrypted with an rclone config password.

The encrypted files are made here from rclone's published algorithm (key = SHA-256
of "[password][rclone-config]", a random 24-byte nonce, a NaCl secretbox, base64
after the `RCLONE_ENCRYPT_V0:` line), with PyNaCl directly, not by cloudvol's code.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import nacl.secret
import nacl.utils
import pytest

from adapters.config import load_rclone_config
from adapters.config.encrypted import run_password_command
from domain.rclone_config import ConfigFileError

PLAIN = "[files]\ntype = sftp\nhost = files.example.org\nuser = me\n"
PASSWORD = "correct horse battery staple"


def rclone_encrypted(plain: str, password: str) -> str:
    key = hashlib.sha256(f"[{password}][rclone-config]".encode()).digest()
    nonce = nacl.utils.random(24)
    sealed = nacl.secret.SecretBox(key).encrypt(plain.encode(), nonce)  # nonce + box
    return "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\n" + (
        base64.b64encode(bytes(sealed)).decode() + "\n"
    )


@pytest.fixture
def encrypted_file(tmp_path: Path) -> Path:
    path = tmp_path / "rclone.conf"
    path.write_text(rclone_encrypted(PLAIN, PASSWORD))
    return path


@pytest.mark.parametrize("variable", ["CLOUDVOL_CONFIG_PASS", "RCLONE_CONFIG_PASS"])
def test_an_encrypted_file_is_read_with_the_password_from_the_environment(
    encrypted_file: Path, variable: str
) -> None:
    config = load_rclone_config(str(encrypted_file), {variable: PASSWORD})
    assert config.value("files", "host") == "files.example.org"


def test_a_wrong_password_is_refused_without_showing_it(encrypted_file: Path) -> None:
    with pytest.raises(ConfigFileError) as info:
        load_rclone_config(str(encrypted_file), {"CLOUDVOL_CONFIG_PASS": "hunter2"})
    assert str(info.value) == (
        f"config file {encrypted_file} cannot be decrypted: wrong config password"
    )


def test_no_password_names_where_to_give_it(encrypted_file: Path) -> None:
    with pytest.raises(ConfigFileError, match="is encrypted: give its password in"):
        load_rclone_config(str(encrypted_file), {})


def test_a_damaged_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "rclone.conf"
    path.write_text("RCLONE_ENCRYPT_V0:\nnot base64 at all!\n")
    with pytest.raises(ConfigFileError, match="the encrypted part is not base64"):
        load_rclone_config(str(path), {"RCLONE_CONFIG_PASS": PASSWORD})


def test_environment_remotes_are_laid_over_the_decrypted_file(encrypted_file: Path) -> None:
    config = load_rclone_config(
        str(encrypted_file),
        {"RCLONE_CONFIG_PASS": PASSWORD, "CLOUDVOL_CONFIG_FILES_PORT": "2222"},
    )
    assert config.value("files", "port") == "2222"
    assert config.value("files", "user") == "me"


def test_the_password_command_prints_the_password() -> None:
    assert run_password_command(f"printf '%s\\n' '{PASSWORD}'") == PASSWORD


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("false", "--password-command exited with status 1"),
        ("true", "--password-command printed no password"),
        ("/nonexistent/askpass", "--password-command failed"),
    ],
)
def test_a_failing_password_command_is_reported(command: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        run_password_command(command)
