"""Issue 11 §5-§6 flags with an observable effect, over a real FUSE mount of an
SFTP volume (OpenSSH's sshd on loopback): filters hide files, min free space
evicts, used-is-size changes df, chunk streams read byte-identical data, and
block-norm-dupes hides a name's other normal form.

The FUSE server is another process: blocking calls here cannot deadlock it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount
from tests.integration.fixtures.polling import holds_within
from tests.integration.fixtures.sshd import SshdServer, sshd

__all__ = ["fuse_mount", "sshd"]  # the fixtures, imported for pytest


def sftp_mount(
    fuse_mount: MountFactory,
    server: SshdServer,
    remote: Path,
    *opts: str,
    cache: Path | None = None,
) -> Mounted:
    args = [
        *("--opt", "type=sftp"),
        *("--opt", f"sftp-host={server.host}"),
        *("--opt", f"sftp-port={server.port}"),
        *("--opt", f"sftp-user={server.user}"),
        *("--opt", f"sftp-key-file={server.key_file}"),
        *("--opt", f"path={remote}"),
    ]
    for opt in opts:
        args += ["--opt", opt]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    return fuse_mount(*args)


def put(root: Path, path: str, data: bytes) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def used_bytes(mountpoint: Path) -> int:
    st = os.statvfs(mountpoint)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_filters_hide_files_from_listing_lookup_and_open(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    for path in ("a.txt", "b.bak", "secret/x.txt", "keep/c.bak", "keep/d.txt", "big.txt"):
        put(remote, path, b"x" * (5000 if path == "big.txt" else 10))
    put(remote, "marked/.hide", b"")
    put(remote, "marked/e.txt", b"e")
    rules = tmp_path / "rules"
    rules.write_text("# hide backups and secrets\n- *.bak\n- secret/\n")
    m = sftp_mount(
        fuse_mount,
        sshd,
        remote,
        f"filter-from={rules}",
        "max-size=1K",
        "exclude-if-present=.hide",
    )
    mp = m.mountpoint
    assert sorted(os.listdir(mp)) == ["a.txt", "keep"]
    assert sorted(os.listdir(mp / "keep")) == ["d.txt"]
    for hidden in ("b.bak", "secret", "secret/x.txt", "keep/c.bak", "big.txt", "marked"):
        assert not (mp / hidden).exists(), hidden
    with pytest.raises(FileNotFoundError):
        (mp / "keep" / "c.bak").read_bytes()
    assert (mp / "keep" / "d.txt").read_bytes() == b"x" * 10


def test_include_shows_only_matching_files(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    for path in ("a.jpg", "a.txt", "sub/b.png", "sub/b.txt"):
        put(remote, path, b"1")
    m = sftp_mount(fuse_mount, sshd, remote, 'include="*.{jpg,png}"')
    assert sorted(os.listdir(m.mountpoint)) == ["a.jpg", "sub"]
    assert os.listdir(m.mountpoint / "sub") == ["b.png"]


def test_used_is_size_changes_df(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    put(remote, "one", os.urandom(1 << 20))
    put(remote, "d/e/two", os.urandom(2 << 20))
    plain = sftp_mount(fuse_mount, sshd, remote)
    assert used_bytes(plain.mountpoint) == 0
    sized = sftp_mount(fuse_mount, sshd, remote, "vfs-used-is-size=true")
    assert holds_within(lambda: used_bytes(sized.mountpoint) == 3 << 20, 20)


@pytest.mark.parametrize("streams", [4, 16])
def test_chunk_streams_read_byte_identical_data(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path, streams: int
) -> None:
    remote = tmp_path / "remote"
    data = os.urandom(24 * 1024 * 1024 + 4321)
    put(remote, "big", data)
    m = sftp_mount(
        fuse_mount,
        sshd,
        remote,
        f"vfs-read-chunk-streams={streams}",
        "vfs-read-chunk-size=1M",
    )
    digest = hashlib.sha256()
    with open(m.mountpoint / "big", "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    with open(m.mountpoint / "big", "rb") as f:  # and after a seek
        f.seek(5_000_001)
        assert f.read(3_000_000) == data[5_000_001:8_000_001]


def test_min_free_space_evicts_cached_files(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    put(remote, "f", os.urandom(256 * 1024))
    cache = tmp_path / "cache"
    # More free space than any disk has: every closed, clean file must go.
    m = sftp_mount(
        fuse_mount,
        sshd,
        remote,
        "vfs-cache-mode=full",
        "vfs-cache-min-free-space=1P",
        "vfs-cache-poll-interval=200ms",
        cache=cache,
    )
    data_file = cache / "vfs" / "vol" / "data" / "f"
    with open(m.mountpoint / "f", "rb") as f:
        assert len(f.read()) == 256 * 1024
        assert data_file.exists()  # cached while open: never evicted
    assert holds_within(lambda: not data_file.exists(), 20)


def test_block_norm_dupes_hides_the_other_normal_form(
    fuse_mount: MountFactory, sshd: SshdServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    put(remote, nfc, b"composed")
    put(remote, nfd, b"decomposed")
    plain = sftp_mount(fuse_mount, sshd, remote)
    assert sorted(os.listdir(plain.mountpoint)) == sorted([nfc, nfd])
    blocked = sftp_mount(fuse_mount, sshd, remote, "vfs-block-norm-dupes=true")
    assert os.listdir(blocked.mountpoint) == [nfc]
    assert (blocked.mountpoint / nfc).read_bytes() == b"composed"
