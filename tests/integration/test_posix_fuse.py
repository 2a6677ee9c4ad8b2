"""Issue 11 §1-§4 on a real FUSE mount over SFTP (OpenSSH on loopback), in cache
modes off, writes and full: the errno of each refused operation is the one the
same operation gets on a local directory in the same test; symlinks, hard links,
modes, owners and times with --links --metadata."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.timing import until

__all__ = ["fuse_mount", "sshd"]  # the fixtures, imported for pytest

MODES = ["off", "writes", "full"]


def sftp_args(server: SshdServer, remote: Path, *options: str) -> list[str]:
    args = [
        "type=sftp", f"sftp-host={server.host}", f"sftp-port={server.port}",
        f"sftp-user={server.user}", f"sftp-key-file={server.key_file}", f"path={remote}",
        *options,
    ]  # fmt: skip
    return [arg for option in args for arg in ("--opt", option)]


@pytest.fixture
def sftp_mount(
    fuse_mount: MountFactory, sshd: SshdServer
) -> Iterator[Callable[..., tuple[Mounted, Path]]]:
    """`sftp_mount(*options)`: a mount of a fresh directory of the SFTP server,
    and that directory as the server's disk has it."""
    count = 0

    def mount(*options: str) -> tuple[Mounted, Path]:
        nonlocal count
        remote = sshd.data_dir / f"vol{count}"
        count += 1
        remote.mkdir()
        return fuse_mount(*sftp_args(sshd, remote, *options)), remote

    yield mount


def errno_of(fn: Callable[..., object], *args: object) -> int | None:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    return None


# Each case: (name, set-up in a directory, the operation in that directory).
def _make_file(d: Path) -> None:
    (d / "f").write_bytes(b"x")


def _make_dirs(d: Path) -> None:
    (d / "full").mkdir()
    (d / "full" / "inside").write_bytes(b"x")
    (d / "dir").mkdir()
    (d / "dir" / "child").mkdir()
    (d / "f").write_bytes(b"x")


ERRNO_CASES: dict[str, Callable[[Path], object]] = {
    "create a 256-byte name": lambda d: (d / ("n" * 256)).write_bytes(b""),
    "mkdir a 256-byte name": lambda d: (d / ("n" * 256)).mkdir(),
    "stat a 256-byte name": lambda d: os.stat(d / ("n" * 256)),
    "O_CREAT|O_EXCL on an existing name": lambda d: os.open(
        d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY
    ),
    "rmdir a non-empty directory": lambda d: os.rmdir(d / "full"),
    "rename a directory into its own child": lambda d: os.rename(d / "dir", d / "dir/child/x"),
    "rename a file over a directory": lambda d: os.rename(d / "f", d / "dir"),
    "rename a directory over a file": lambda d: os.rename(d / "dir", d / "f"),
    "unlink a directory": lambda d: os.unlink(d / "dir"),
    "a trailing slash on a file": lambda d: os.stat(str(d / "f") + "/"),
    "open a file with a trailing slash": lambda d: open(str(d / "f") + "/", "rb"),
}


@pytest.mark.parametrize("mode", MODES)
def test_errnos_are_those_of_a_local_disk(
    sftp_mount: Callable[..., tuple[Mounted, Path]], tmp_path: Path, mode: str
) -> None:
    mounted, _ = sftp_mount(f"vfs-cache-mode={mode}", "links=true", "metadata=true")
    local = tmp_path / "local"
    local.mkdir()
    for where in (local, mounted.mountpoint):
        _make_dirs(where)
    results = {}
    for name, operation in ERRNO_CASES.items():
        expected = errno_of(operation, local)
        assert expected is not None, f"{name}: no error on the local disk"
        got = errno_of(operation, mounted.mountpoint)
        results[name] = (errno.errorcode.get(expected), errno.errorcode.get(got or 0, got))
    assert all(want == got for want, got in results.values()), results
    # The mount's tree is as the local one after all those refusals.
    assert sorted(os.listdir(mounted.mountpoint)) == sorted(os.listdir(local))


@pytest.mark.parametrize("mode", MODES)
def test_mkfifo_and_mknod_are_eperm(
    sftp_mount: Callable[..., tuple[Mounted, Path]], mode: str
) -> None:
    mounted, _ = sftp_mount(f"vfs-cache-mode={mode}")
    mp = mounted.mountpoint
    assert errno_of(lambda: os.mkfifo(mp / "fifo")) == errno.EPERM
    assert errno_of(lambda: os.mknod(mp / "sock", stat.S_IFSOCK | 0o600)) == errno.EPERM
    assert not os.path.lexists(mp / "fifo")


@pytest.mark.parametrize("mode", MODES)
def test_symlinks_with_links(sftp_mount: Callable[..., tuple[Mounted, Path]], mode: str) -> None:
    mounted, remote = sftp_mount(f"vfs-cache-mode={mode}", "links=true")
    mp = mounted.mountpoint
    (mp / "target.txt").write_bytes(b"pointed at")
    os.symlink("target.txt", mp / "ln")
    os.symlink("../nowhere/at/all", mp / "dangling")
    assert os.readlink(mp / "ln") == "target.txt"
    assert stat.S_ISLNK(os.lstat(mp / "ln").st_mode)
    assert (mp / "ln").read_bytes() == b"pointed at"  # followed by the kernel
    assert os.readlink(mp / "dangling") == "../nowhere/at/all"
    assert not (mp / "dangling").exists()
    assert (remote / "ln.rclonelink").read_bytes() == b"target.txt"
    os.rename(mp / "ln", mp / "renamed")
    assert os.readlink(mp / "renamed") == "target.txt"
    assert (remote / "renamed.rclonelink").exists() and not (remote / "ln.rclonelink").exists()
    os.unlink(mp / "renamed")
    os.unlink(mp / "dangling")
    assert sorted(os.listdir(remote)) == ["target.txt"] or mode != "off"
    until(lambda: sorted(os.listdir(remote)) == ["target.txt"])
    assert sorted(os.listdir(mp)) == ["target.txt"]


def test_symlink_without_links_is_enosys_and_named_in_the_log(
    sftp_mount: Callable[..., tuple[Mounted, Path]], capfd: pytest.CaptureFixture[str]
) -> None:
    mounted, remote = sftp_mount()
    assert errno_of(lambda: os.symlink("t", mounted.mountpoint / "ln")) == errno.ENOSYS
    mounted.unmount()
    assert "without the --links flag" in capfd.readouterr().err
    assert os.listdir(remote) == []


@pytest.mark.parametrize("mode", MODES)
def test_hard_links_on_openssh(sftp_mount: Callable[..., tuple[Mounted, Path]], mode: str) -> None:
    mounted, remote = sftp_mount(f"vfs-cache-mode={mode}")
    mp = mounted.mountpoint
    (mp / "f").write_bytes(b"one file")
    os.link(mp / "f", mp / "g")
    assert os.stat(mp / "g").st_ino == os.stat(mp / "f").st_ino
    assert os.stat(mp / "g").st_nlink == 2
    assert os.stat(remote / "g").st_ino == os.stat(remote / "f").st_ino  # on the server too
    assert (mp / "g").read_bytes() == b"one file"
    assert errno_of(lambda: os.link(mp / "f", mp / "g")) == errno.EEXIST


@pytest.mark.parametrize("mode", MODES)
def test_modes_owners_and_times_with_metadata(
    sftp_mount: Callable[..., tuple[Mounted, Path]], mode: str
) -> None:
    options = (f"vfs-cache-mode={mode}", "metadata=true", "dir-cache-time=0s")
    mounted, remote = sftp_mount(*options)
    mp = mounted.mountpoint
    (mp / "script").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(mp / "script", 0o751)
    os.chown(mp / "script", 1234, 5678)
    after_2038 = 4_102_444_800_000_000_000  # 2100-01-01, ns
    os.utime(mp / "script", ns=(after_2038 + 5, 1_000_000_000_000_000_000))
    (mp / "d").mkdir(mode=0o700)
    st = os.stat(mp / "script")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o751, 1234, 5678)
    assert (st.st_atime_ns // 10**9, st.st_mtime_ns) == (after_2038 // 10**9, 10**18)

    def on_server() -> bool:
        if not (remote / "script").exists():
            return False  # writes and full: uploaded after --vfs-write-back
        server = os.stat(remote / "script")
        return (
            stat.S_IMODE(server.st_mode) == 0o751
            and (server.st_uid, server.st_gid) == (1234, 5678)
            and server.st_atime_ns // 10**9 == after_2038 // 10**9
            and server.st_mtime_ns == 10**18
        )

    until(on_server, within=20)
    assert stat.S_IMODE(os.stat(remote / "d").st_mode) == 0o700
    # SFTP v3 keeps 32-bit unsigned seconds: before 1970 cannot be stored.
    assert errno_of(lambda: os.utime(mp / "d", (-86400, -86400))) in (errno.EOVERFLOW, None)
    # A fresh mount reads them back from the server.
    mounted.unmount()
    again = sftp_args_mount(sftp_mount, remote, options)
    st = os.stat(again / "script")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o751, 1234, 5678)
    assert st.st_atime_ns // 10**9 == after_2038 // 10**9


def sftp_args_mount(
    sftp_mount: Callable[..., tuple[Mounted, Path]], remote: Path, options: tuple[str, ...]
) -> Path:
    """Mount `remote` again (the factory's `path` option is overridden)."""
    mounted, _ = sftp_mount(*options, f"path={remote}")
    return mounted.mountpoint


def test_without_metadata_chmod_does_nothing_as_rclone(
    sftp_mount: Callable[..., tuple[Mounted, Path]],
) -> None:
    mounted, _ = sftp_mount("vfs-cache-mode=writes", "file-perms=0640", "umask=0")
    (mounted.mountpoint / "f").write_bytes(b"x")
    os.chmod(mounted.mountpoint / "f", 0o777)
    assert stat.S_IMODE(os.stat(mounted.mountpoint / "f").st_mode) == 0o640


# ----- interop with Debian's rclone (1.60) --------------------------------------------


def rclone(*args: str) -> None:
    result = subprocess.run(
        ["rclone", "--config", "/dev/null", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def rclone_remote(server: SshdServer, remote: Path) -> str:
    return (
        f":sftp,host={server.host},port={server.port},user={server.user},"
        f"key_file={server.key_file}:{remote}"
    )


LINKS = {"to-file": "data.txt", "to-dir": "sub", "absolute": "/etc/hostname", "dangling": "gone"}


def test_links_rclone_wrote_read_the_same_here(
    sftp_mount: Callable[..., tuple[Mounted, Path]], sshd: SshdServer, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "data.txt").write_bytes(b"data")
    (tree / "sub" / "in").write_bytes(b"in")  # rclone copies no empty directory
    for name, target in LINKS.items():
        os.symlink(target, tree / name)
    mounted, remote = sftp_mount("vfs-cache-mode=writes", "links=true")
    rclone("copy", "--links", str(tree), rclone_remote(sshd, remote))
    assert (remote / "to-file.rclonelink").read_bytes() == b"data.txt"
    mp = mounted.mountpoint
    for name, target in LINKS.items():
        assert os.readlink(mp / name) == target
    assert (mp / "to-file").read_bytes() == b"data"
    assert sorted(os.listdir(mp / "to-dir")) == ["in"]


def test_links_made_here_copy_back_with_rclone(
    sftp_mount: Callable[..., tuple[Mounted, Path]], sshd: SshdServer, tmp_path: Path
) -> None:
    mounted, remote = sftp_mount("vfs-cache-mode=writes", "links=true")
    mp = mounted.mountpoint
    (mp / "sub").mkdir()
    (mp / "data.txt").write_bytes(b"data")
    for name, target in LINKS.items():
        os.symlink(target, mp / name)
    out = tmp_path / "out"
    until(lambda: (remote / "data.txt").exists(), within=20)
    rclone("copy", "--links", rclone_remote(sshd, remote), str(out))
    for name, target in LINKS.items():
        assert os.readlink(out / name) == target
    assert (out / "data.txt").read_bytes() == b"data"


def test_metadata_extension_files(sftp_mount: Callable[..., tuple[Mounted, Path]]) -> None:
    mounted, remote = sftp_mount("metadata=true", "vfs-metadata-extension=.metadata")
    mp = mounted.mountpoint
    (mp / "f").write_bytes(b"x")
    os.chmod(mp / "f", 0o640)
    os.utime(mp / "f", (1_600_000_000, 1_600_000_000))
    content = json.loads((mp / "f.metadata").read_bytes())
    assert content["mode"] == "640"
    assert content["mtime"] == "2020-09-13T12:26:40.000000000Z"
    assert os.listdir(mp) == ["f"]  # found by name, not listed
    assert not (remote / "f.metadata").exists()
    assert errno_of(lambda: (mp / "f.metadata").write_bytes(b"{}")) == errno.EACCES
