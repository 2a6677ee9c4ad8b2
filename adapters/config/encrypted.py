"""Config files encrypted with an rclone config password (`RCLONE_ENCRYPT_V0:`).

rclone's published format: after optional blank and comment lines, a line
`RCLONE_ENCRYPT_V0:`, then base64 (standard alphabet) of a 24-byte nonce followed
by a NaCl secretbox of the plain config text. The key is the SHA-256 of
`[<password>][rclone-config]`, the password NFKC-normalised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shlex
import subprocess
import unicodedata
from collections.abc import Mapping

import nacl.exceptions
import nacl.secret

from domain.rclone_config import ConfigFileError

ENCRYPTED_MARKER = "RCLONE_ENCRYPT_V0:"
# Ours first; rclone's spelling, so an rclone user's environment works unchanged.
PASSWORD_VARIABLES = ("CLOUDVOL_CONFIG_PASS", "RCLONE_CONFIG_PASS")
_NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE


def is_encrypted(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        return stripped == ENCRYPTED_MARKER
    return False


def config_key(password: str) -> bytes:
    normalized = unicodedata.normalize("NFKC", password)
    return hashlib.sha256(f"[{normalized}][rclone-config]".encode()).digest()


def password_from(environ: Mapping[str, str]) -> str | None:
    for variable in PASSWORD_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    return None


def decrypt_config(text: str, password: str, path: str) -> str:
    """The plain text of an encrypted config file. Raises ConfigFileError, naming the
    file but never the password."""
    if not password.strip():
        raise ConfigFileError(f"config file {path}: the config password is empty")
    body = text.split(ENCRYPTED_MARKER, 1)[1]
    try:
        sealed = base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise ConfigFileError(f"config file {path}: the encrypted part is not base64") from None
    if len(sealed) < _NONCE_SIZE + nacl.secret.SecretBox.MACBYTES:
        raise ConfigFileError(f"config file {path}: the encrypted part is too short")
    box = nacl.secret.SecretBox(config_key(password))
    try:
        plain = box.decrypt(sealed[_NONCE_SIZE:], sealed[:_NONCE_SIZE])
    except nacl.exceptions.CryptoError:
        raise ConfigFileError(
            f"config file {path} cannot be decrypted: wrong config password"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {path}: the decrypted text is not UTF-8") from None


def run_password_command(command: str, timeout: float = 60.0) -> str:
    """The config password printed by `command` (split as a shell would, run without
    one), its line ending removed, as rclone's --password-command does."""
    try:
        result = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ConfigFileError(f"--password-command failed: {exc}") from None
    if result.returncode != 0:
        raise ConfigFileError(
            f"--password-command exited with status {result.returncode}:"
            f" {result.stderr.strip()[-500:]}"
        )
    password = result.stdout.rstrip("\r\n")
    if not password:
        raise ConfigFileError("--password-command printed no password")
    return password
