"""rclone's crypt cipher: keys, file names and the sizes of encrypted files.

Keys: scrypt(password, salt, N=16384, r=8, p=1) gives 80 bytes: the data key
(32), the name key (32) and the name tweak (16). The salt is `password2`, or
rclone's fixed default salt when that is empty; an empty password gives all-zero
keys, as in rclone.

Names, one path segment at a time:
- standard: PKCS#7-padded to 16 bytes, EME-AES with the name key and tweak, then
  base32hex (lower case, no padding), URL-safe base64 without padding, or base32768;
- obfuscate: a rotation of letters, digits and other ranges, prefixed with the
  rotation's seed ("<n>.");
- off: the name as is, `suffix` (".bin") appended to file names.
With `directory_name_encryption = false` directories keep their plain names.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from adapters.storage.crypt import base32768
from adapters.storage.crypt.eme import Eme

DEFAULT_SALT = bytes.fromhex("a80df43a8fbd0308a7cab83e581f86b1")
NAME_MODES = ("standard", "obfuscate", "off")
ENCODINGS = ("base32", "base64", "base32768")

HEADER_MAGIC = b"RCLONE\x00\x00"
NONCE_SIZE = 24
HEADER_SIZE = len(HEADER_MAGIC) + NONCE_SIZE
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16  # secretbox's Poly1305 tag, ahead of each chunk's ciphertext
SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE

_QUOTE = "!"


class NameError_(ValueError):
    """A remote name that this cipher did not make (another key, another mode)."""


def derive_keys(password: str, salt: str) -> tuple[bytes, bytes, bytes]:
    """(data key, name key, name tweak) as rclone derives them."""
    if password == "":
        key = bytes(80)
    else:
        key = hashlib.scrypt(
            password.encode(),
            salt=salt.encode() if salt else DEFAULT_SALT,
            n=16384,
            r=8,
            p=1,
            maxmem=64 * 1024 * 1024,
            dklen=80,
        )
    return key[:32], key[32:64], key[64:80]


def encrypted_size(size: int) -> int:
    full, rest = divmod(size, CHUNK_SIZE)
    return HEADER_SIZE + full * SEALED_CHUNK + (rest + TAG_SIZE if rest else 0)


def decrypted_size(size: int) -> int | None:
    """The plain size of an encrypted file of `size` bytes; None if no encrypted
    file has that size."""
    body = size - HEADER_SIZE
    if body < 0:
        return None
    full, rest = divmod(body, SEALED_CHUNK)
    if rest == 0:
        return full * CHUNK_SIZE
    if rest <= TAG_SIZE:
        return None
    return full * CHUNK_SIZE + rest - TAG_SIZE


@dataclass(frozen=True)
class NameSettings:
    mode: str = "standard"
    directory_names: bool = True
    encoding: str = "base32"
    suffix: str = ".bin"


class NameCipher:
    def __init__(self, name_key: bytes, tweak: bytes, settings: NameSettings) -> None:
        self._eme = Eme(name_key)
        self._name_key = name_key
        self._tweak = tweak
        self.settings = settings

    # whole paths

    def encrypt_path(self, parts: list[str], *, is_file: bool) -> list[str]:
        """The remote segments of a path given as plain segments; the last is a
        file's name when `is_file`."""
        out: list[str] = []
        for index, part in enumerate(parts):
            leaf_file = is_file and index == len(parts) - 1
            out.append(self.encrypt_name(part, is_file=leaf_file))
        return out

    def encrypt_name(self, name: str, *, is_file: bool) -> str:
        settings = self.settings
        if settings.mode == "off":
            return name + settings.suffix if is_file else name
        if not is_file and not settings.directory_names:
            return name
        if settings.mode == "obfuscate":
            return self._obfuscate(name)
        return self._encrypt_standard(name)

    def decrypt_name(self, name: str, *, is_file: bool) -> str:
        """The plain name of a remote entry; NameError_ if this cipher did not make it."""
        settings = self.settings
        if settings.mode == "off":
            if not is_file:
                return name
            if not name.endswith(settings.suffix) or len(name) == len(settings.suffix):
                raise NameError_(f"{name!r} lacks the {settings.suffix!r} suffix")
            return name[: -len(settings.suffix)]
        if not is_file and not settings.directory_names:
            return name
        if settings.mode == "obfuscate":
            return self._deobfuscate(name)
        return self._decrypt_standard(name)

    # standard

    def _encode(self, data: bytes) -> str:
        encoding = self.settings.encoding
        if encoding == "base32":
            return base64.b32hexencode(data).decode().rstrip("=").lower()
        if encoding == "base64":
            return base64.urlsafe_b64encode(data).decode().rstrip("=")
        return base32768.encode(data)

    def _decode(self, text: str) -> bytes:
        encoding = self.settings.encoding
        try:
            if encoding == "base32":
                if text != text.lower():
                    raise ValueError("upper case")
                padded = text.upper() + "=" * (-len(text) % 8)
                return base64.b32hexdecode(padded)
            if encoding == "base64":
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return base32768.decode(text)
        except ValueError as exc:
            raise NameError_(f"{text!r} is not {encoding}: {exc}") from None

    def _encrypt_standard(self, name: str) -> str:
        if name == "":
            return ""
        raw = name.encode("utf-8", "surrogateescape")
        pad = 16 - len(raw) % 16
        return self._encode(self._eme.encrypt(self._tweak, raw + bytes([pad]) * pad))

    def _decrypt_standard(self, text: str) -> str:
        if text == "":
            return ""
        data = self._decode(text)
        if not data or len(data) % 16 or len(data) > 2048:
            raise NameError_(f"{text!r} has a length no encrypted name has")
        plain = self._eme.decrypt(self._tweak, data)
        pad = plain[-1]
        if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
            raise NameError_(f"{text!r} does not decrypt with this key")
        return plain[:-pad].decode("utf-8", "surrogateescape")

    # obfuscate

    def _key_sum(self) -> int:
        return sum(self._name_key)

    def _obfuscate(self, name: str) -> str:
        if name == "":
            return ""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "!." + name  # not valid UTF-8: rclone only marks it
        seed = sum(ord(c) for c in name) % 256
        out = [f"{seed}."]
        turn = seed + self._key_sum()
        for char in name:
            code = ord(char)
            if char == _QUOTE:
                out.append(_QUOTE + _QUOTE)
            elif "0" <= char <= "9":
                out.append(chr(ord("0") + (code - ord("0") + turn % 9 + 1) % 10))
            elif "A" <= char <= "Z" or "a" <= char <= "z":
                pos = code - ord("A")
                if pos >= 26:
                    pos -= 6
                pos = (pos + turn % 25 + 1) % 52
                if pos >= 26:
                    pos += 6
                out.append(chr(ord("A") + pos))
            elif 0xA0 <= code <= 0xFF:
                out.append(chr(0xA0 + (code - 0xA0 + turn % 95 + 1) % 96))
            elif code >= 0x100:
                base = code - code % 256
                new = base + (code - base + turn % 127 + 1) % 256
                if 0xD800 <= new <= 0xDFFF or new > 0x10FFFF:
                    out.append(_QUOTE + char)
                else:
                    out.append(chr(new))
            else:
                out.append(char)
        return "".join(out)

    def _deobfuscate(self, text: str) -> str:
        if text == "":
            return ""
        dot = text.find(".")
        if dot < 0:
            raise NameError_(f"{text!r} is not an obfuscated name")
        seed_text = text[:dot]
        if seed_text == "!":
            return text[dot + 1 :]
        if not seed_text.isdigit():
            raise NameError_(f"{text!r} is not an obfuscated name")
        turn = int(seed_text) + self._key_sum()
        out: list[str] = []
        quoted = False
        for char in text[dot + 1 :]:
            code = ord(char)
            if quoted:
                out.append(char)
                quoted = False
            elif char == _QUOTE:
                quoted = True
            elif "0" <= char <= "9":
                out.append(chr(ord("0") + (code - ord("0") - turn % 9 - 1) % 10))
            elif "A" <= char <= "Z" or "a" <= char <= "z":
                pos = code - ord("A")
                if pos >= 26:
                    pos -= 6
                pos = (pos - turn % 25 - 1) % 52
                if pos >= 26:
                    pos += 6
                out.append(chr(ord("A") + pos))
            elif 0xA0 <= code <= 0xFF:
                out.append(chr(0xA0 + (code - 0xA0 - turn % 95 - 1) % 96))
            elif code >= 0x100:
                base = code - code % 256
                out.append(chr(base + (code - base - turn % 127 - 1) % 256))
            else:
                out.append(char)
        return "".join(out)
