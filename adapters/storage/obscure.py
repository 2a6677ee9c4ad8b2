"""rclone's reversible password obscuring (`rclone obscure` / `rclone reveal`).

rclone keeps passwords in its config and in `-o sftp-pass=...` obscured, not
encrypted: AES-256-CTR under a fixed key published in rclone's source, with a
random 16-byte IV put in front of the ciphertext, the whole encoded as URL-safe
base64 without padding. It only stops a password being read at a glance; we
implement it so values users already have keep working.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from domain.errors import OptionError

# rclone's published obscuring key (lib/obscure); it must match for compatibility.
_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")
_IV_LEN = 16


def _crypt(data: bytes, iv: bytes) -> bytes:
    # CTR mode: encrypting and decrypting are the same keystream XOR.
    transform = Cipher(algorithms.AES(_KEY), modes.CTR(iv)).encryptor()
    return transform.update(data) + transform.finalize()


def obscure(plain: str) -> str:
    """Obscure `plain` the way `rclone obscure` does (random IV: output varies)."""
    iv = os.urandom(_IV_LEN)
    raw = iv + _crypt(plain.encode("utf-8"), iv)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def reveal(obscured: str, what: str = "password") -> str:
    """The plain text of an rclone-obscured value.

    `what` names the option in the error (e.g. "sftp pass"); the value itself is
    never put in a message.
    """
    failure = OptionError(f"{what}: value is not an obscured password (use `rclone obscure`)")
    padded = obscured.strip() + "=" * (-len(obscured.strip()) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise failure from None
    if len(raw) < _IV_LEN:
        raise failure
    try:
        return _crypt(raw[_IV_LEN:], raw[:_IV_LEN]).decode("utf-8")
    except UnicodeDecodeError:
        raise failure from None
