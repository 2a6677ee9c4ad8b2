"""Issue 11's workloads on an SFTP volume in cache mode writes with --links
--metadata: tar -xpf then tar -d, git, python3 -m venv, rsync -a, sqlite3.

They run on the host against the volume's FUSE mount, served by the same mount
worker a `docker volume create -d cloudvol` volume gets. A container would see
the same mount through a bind, and the tests' image is busybox from
`docker import`, which has none of tar (GNU), git, python3, rsync or sqlite3;
bind-mounting the host's tools into it would mean most of the host's /usr and
/lib, so it would test nothing more than this does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.fuse_mount import Mounted, MountFactory, fuse_mount
from tests.integration.fixtures.sshd import SshdServer, sshd
from tests.integration.test_posix_fuse import sftp_args

__all__ = ["fuse_mount", "sshd"]  # the fixtures, imported for pytest

VOLUME = ("vfs-cache-mode=writes", "links=true", "metadata=true")


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def volume(
    fuse_mount: MountFactory, sshd: SshdServer
) -> Iterator[Callable[[], tuple[Mounted, Path]]]:
    """`volume()`: mounts the same SFTP directory (again, after an unmount)."""
    remote = sshd.data_dir / "vol"
    remote.mkdir()

    def mount() -> tuple[Mounted, Path]:
        return fuse_mount(*sftp_args(sshd, remote, *VOLUME)), remote

    yield mount


def _source_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "private").mkdir(mode=0o700)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    os.chmod(root / "bin" / "tool", 0o755)
    (root / "private" / "secret").write_bytes(b"secret\n")
    os.chmod(root / "private" / "secret", 0o600)
    (root / "data.bin").write_bytes(os.urandom(300_000))
    os.link(root / "data.bin", root / "data-hardlink.bin")
    os.symlink("bin/tool", root / "tool-link")
    os.symlink("../missing", root / "bin" / "dangling")
    os.chown(root / "private" / "secret", 1234, 4321)
    os.utime(root / "data.bin", (1_000_000_000, 1_000_000_000))


def test_tar_extract_then_compare(
    volume: Callable[[], tuple[Mounted, Path]], tmp_path: Path
) -> None:
    source = tmp_path / "source"
    _source_tree(source)
    archive = tmp_path / "tree.tar"
    run("tar", "-cf", archive, "-C", source, ".")
    mounted, _ = volume()
    target = mounted.mountpoint / "x"
    target.mkdir()
    run("tar", "-xpf", archive, "-C", target)
    assert run("tar", "-df", archive, "-C", target) == ""
    assert os.readlink(target / "tool-link") == "bin/tool"
    assert os.stat(target / "data-hardlink.bin").st_nlink == 2


def test_git_repository_with_an_executable_and_a_symlink(
    volume: Callable[[], tuple[Mounted, Path]],
) -> None:
    mounted, _ = volume()
    repo = mounted.mountpoint / "repo"
    git_env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
        "HOME": str(mounted.mountpoint),
    }  # fmt: skip
    run("git", "init", "-q", "-b", "main", repo, env=git_env)
    assert run("git", "config", "core.filemode", cwd=repo).strip() == "true"
    # git init probes the file system: symlinks work, so it leaves them on.
    symlinks = run("git", "config", "--bool", "--default", "true", "core.symlinks", cwd=repo)
    assert symlinks.strip() == "true"
    (repo / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("run.sh", repo / "link")
    run("git", "add", ".", cwd=repo, env=git_env)
    run("git", "commit", "-q", "-m", "first", cwd=repo, env=git_env)
    tree = run("git", "ls-tree", "HEAD", cwd=repo)
    assert "100755 blob" in tree and "120000 blob" in tree
    run("git", "checkout", "-q", "-b", "other", cwd=repo, env=git_env)
    (repo / "link").unlink()
    run("git", "commit", "-q", "-am", "no link", cwd=repo, env=git_env)
    run("git", "checkout", "-q", "main", cwd=repo, env=git_env)
    assert os.readlink(repo / "link") == "run.sh"
    assert run("sh", "-c", "./link", cwd=repo) == "ran\n"
    assert run("git", "status", "--porcelain", cwd=repo) == ""
    run("git", "fsck", "--strict", "--no-progress", cwd=repo)


def test_python_venv_on_the_volume(volume: Callable[[], tuple[Mounted, Path]]) -> None:
    mounted, _ = volume()
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    venv = mounted.mountpoint / "venv"
    run(python, "-m", "venv", venv)
    assert os.path.islink(venv / "bin" / "python")
    out = run(venv / "bin" / "python", "-c", "import sys; print(sys.prefix)")
    assert out.strip() == str(venv)
    run(venv / "bin" / "python", "-m", "pip", "--version")


def test_rsync_archive_then_nothing_to_do(
    volume: Callable[[], tuple[Mounted, Path]], tmp_path: Path
) -> None:
    source = tmp_path / "source"
    _source_tree(source)
    mounted, _ = volume()
    target = mounted.mountpoint / "copy"
    run("rsync", "-a", f"{source}/", f"{target}/")
    changes = run("rsync", "-a", "--dry-run", "--itemize-changes", f"{source}/", f"{target}/")
    assert changes == ""
    # The server kept modes, owners and times (directories' too): a fresh mount agrees.
    mounted.unmount()
    again, _ = volume()
    target = again.mountpoint / "copy"
    changes = run("rsync", "-a", "--dry-run", "--itemize-changes", f"{source}/", f"{target}/")
    assert changes == ""


def test_sqlite_database_survives_a_remount(volume: Callable[[], tuple[Mounted, Path]]) -> None:
    mounted, _ = volume()
    db = mounted.mountpoint / "app.db"
    script = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n"
    for batch in range(10):
        rows = ",".join(f"({batch * 100 + i}, 'row {batch * 100 + i}')" for i in range(100))
        script += f"BEGIN; INSERT INTO t VALUES {rows}; COMMIT;\n"
    run("sqlite3", db, script)
    assert run("sqlite3", db, "SELECT count(*) FROM t;").strip() == "1000"
    mounted.unmount()  # uploads what is pending, then goes
    again, _ = volume()
    db = again.mountpoint / "app.db"
    assert run("sqlite3", db, "SELECT count(*), sum(id) FROM t;").strip() == "1000|499500"
    assert run("sqlite3", db, "PRAGMA integrity_check;").strip() == "ok"
