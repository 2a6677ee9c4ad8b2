"""The remotes of issue 13's benchmarks: crypt over the SFTP server and WebDAV
(`rclone serve webdav`, Debian's rclone), each a `Remote` of bench/harness.py so
the read, write and list scenarios run on them unchanged, cloudvol against
`rclone serve docker` with the same volume options.

Both keep their data in a local directory: the bench arranges files and watches
writes arrive there directly (for crypt, through rclone's own crypt over that
directory, and rclone's sizes rule: the plain size is worked out from the
encrypted file's)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from adapters.storage.crypt.cipher import NameCipher, NameSettings, decrypted_size, derive_keys
from adapters.storage.obscure import obscure
from bench.harness import md5_of, random_file, read_whole
from tests.integration.fixtures.file_servers import FileServer, running_server
from tests.integration.fixtures.sshd import SshdServer

CRYPT_PASSWORD = "bench crypt password"


@dataclass
class CryptRemote:
    """A crypt remote over a directory of the SFTP server (standard names, base32)."""

    server: SshdServer
    scratch: Path
    name: str = "crypt"
    config: Path = field(init=False)
    _names: NameCipher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.config = self.scratch / "rclone.conf"
        # The same files through rclone's crypt over the local directory: setup only.
        self.config.write_text(
            f"[c]\ntype = crypt\nremote = {self.root}\npassword = {obscure(CRYPT_PASSWORD)}\n"
        )
        _, name_key, tweak = derive_keys(CRYPT_PASSWORD, "")
        self._names = NameCipher(name_key, tweak, NameSettings())

    @property
    def root(self) -> Path:
        return self.server.data_dir / "crypt"

    def _rclone(self, *args: str) -> bytes:
        return subprocess.run(
            ["rclone", "--config", str(self.config), *args],
            check=True, capture_output=True, timeout=3600,
        ).stdout  # fmt: skip

    def local(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        encrypted = self._names.encrypt_path(parts, is_file=False)
        return self.root.joinpath(*encrypted) if encrypted else self.root

    def options(self, path: str) -> list[str]:
        s = self.server
        sftp = (
            f":sftp,host={s.host},port={s.port},user={s.user},key_file='{s.key_file}':{self.root}"
        )
        return [
            "-o", "type=crypt", "-o", f"crypt-remote={sftp}",
            "-o", f"crypt-password={obscure(CRYPT_PASSWORD)}", "-o", f"path={path}",
        ]  # fmt: skip

    def exists(self, path: str) -> bool:
        return self.local(path).exists()

    def put_random(self, path: str, size: int) -> str:
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            plain = Path(tmp) / "plain"
            md5 = random_file(plain, size)
            self._rclone("copyto", str(plain), f"c:{path}")
        return md5

    def put_files(self, directory: str, files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            for name, body in files.items():
                (Path(tmp) / name).write_bytes(body)
            self._rclone("copy", tmp, f"c:{directory}")

    def make_dir(self, path: str) -> None:
        self.local(path).mkdir(parents=True, exist_ok=True)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self.local(path), ignore_errors=True)

    def size(self, path: str) -> int | None:
        local = self.local(path)
        return decrypted_size(local.stat().st_size) if local.is_file() else None

    def md5(self, path: str) -> str:
        return hashlib.md5(self._rclone("cat", f"c:{path}")).hexdigest()  # crypt keeps no MD5

    def warm(self, path: str) -> None:
        read_whole(self.local(path))


@dataclass
class WebdavRemote:
    """`rclone serve webdav` of a local directory."""

    server: FileServer
    name: str = "webdav"

    def local(self, path: str) -> Path:
        return self.server.data_dir / path if path else self.server.data_dir

    def options(self, path: str) -> list[str]:
        s = self.server
        return [
            "-o", "type=webdav", "-o", f"webdav-url={s.url}", "-o", "webdav-vendor=other",
            "-o", f"webdav-user={s.user}", "-o", f"webdav-pass={s.obscured_password}",
            "-o", f"path={path}",
        ]  # fmt: skip

    def exists(self, path: str) -> bool:
        return self.local(path).exists()

    def put_random(self, path: str, size: int) -> str:
        return random_file(self.local(path), size)

    def put_files(self, directory: str, files: dict[str, bytes]) -> None:
        self.make_dir(directory)
        for name, body in files.items():
            (self.local(directory) / name).write_bytes(body)

    def make_dir(self, path: str) -> None:
        self.local(path).mkdir(parents=True, exist_ok=True)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self.local(path), ignore_errors=True)

    def size(self, path: str) -> int | None:
        local = self.local(path)
        return local.stat().st_size if local.is_file() else None

    def md5(self, path: str) -> str:
        return md5_of(self.local(path))

    def warm(self, path: str) -> None:
        read_whole(self.local(path))


@contextlib.contextmanager
def running_webdav(base: Path) -> Iterator[WebdavRemote]:
    with running_server("webdav", base) as server:
        yield WebdavRemote(server)
