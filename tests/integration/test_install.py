"""Installing cloudvol on a host that already runs Docker CE.

A fresh Debian 12 root file system (tests/integration/fixtures/debian_root.py) gets a
stand-in `docker-ce` package; then `make run` runs in it, in a chroot. `make run` must
install what the daemon needs and leave the operator's engine alone: Debian's docker.io
conflicts with docker-ce, and installing it would make apt remove the engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fixtures.debian_root import in_root, unpack_root

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _fake_docker_ce(workdir: Path) -> Path:
    """An empty package named docker-ce: enough for apt to see an engine installed."""
    package = workdir / "docker-ce"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        "Package: docker-ce\n"
        "Version: 5:99.0.0-cloudvol-test\n"
        "Architecture: all\n"
        "Maintainer: cloudvol tests <tests@cloudvol.invalid>\n"
        "Description: stand-in for Docker CE in cloudvol's install test\n"
    )
    deb = workdir / "docker-ce.deb"
    subprocess.run(["dpkg-deb", "--build", str(package), str(deb)], check=True, capture_output=True)
    return deb


def _copy_source_tree(dest: Path) -> None:
    # What git has, tracked or new, without the developer's venv and caches.
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _status(root: Path, package: str) -> str:
    return in_root(root, f"dpkg-query -W -f='${{Status}}' {package} 2>/dev/null || true").stdout


@pytest.fixture(scope="module")
def docker_ce_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh Debian 12 root with docker-ce installed and cloudvol's source in /src."""
    workdir = tmp_path_factory.mktemp("install")
    root = unpack_root(workdir / "root")
    shutil.copy2(_fake_docker_ce(workdir), root / "tmp" / "docker-ce.deb")
    _copy_source_tree(root / "src")
    installed = in_root(root, "dpkg -i /tmp/docker-ce.deb")
    assert installed.returncode == 0, installed.stderr
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)  # several hundred MB


@pytest.fixture(scope="module")
def make_run(docker_ce_host: Path) -> subprocess.CompletedProcess[str]:
    return in_root(docker_ce_host, "cd /src && make run ARGS=--help")


def test_make_run_installs_the_daemon_and_starts_it(
    make_run: subprocess.CompletedProcess[str],
) -> None:
    assert make_run.returncode == 0, make_run.stdout[-3000:] + make_run.stderr[-3000:]
    assert "usage: cloudvol serve docker" in make_run.stdout
    # No engine runs in the chroot (the stand-in has no dockerd): it says so and starts.
    assert "no Docker engine found on this host" in make_run.stdout


def test_make_run_leaves_docker_ce_and_installs_no_engine(
    docker_ce_host: Path, make_run: subprocess.CompletedProcess[str]
) -> None:
    assert make_run.returncode == 0
    assert _status(docker_ce_host, "docker-ce") == "install ok installed"
    assert _status(docker_ce_host, "docker.io") != "install ok installed"


def test_make_run_installs_only_what_the_daemon_needs(
    docker_ce_host: Path, make_run: subprocess.CompletedProcess[str]
) -> None:
    assert make_run.returncode == 0
    assert _status(docker_ce_host, "fuse3") == "install ok installed"
    for test_only in ("openssh-server", "rclone", "sshfs", "busybox-static"):
        assert _status(docker_ce_host, test_only) != "install ok installed", test_only


def test_the_tests_would_use_the_hosts_engine(
    docker_ce_host: Path, make_run: subprocess.CompletedProcess[str]
) -> None:
    plan = in_root(docker_ce_host, "sh /src/packaging/debian/install-packages.sh --dry-run test")
    assert plan.returncode == 0, plan.stderr
    assert "openssh-server" in plan.stdout
    assert "docker.io" not in plan.stdout
    assert "--no-remove" in plan.stdout  # and apt could remove nothing on the way


def test_pip_install_gives_a_working_command(
    docker_ce_host: Path, make_run: subprocess.CompletedProcess[str]
) -> None:
    # After make run the host has FUSE 3's development files, all pip needs.
    result = in_root(
        docker_ce_host,
        "python3 -m venv /opt/pip-install && /opt/pip-install/bin/pip install -q /src"
        " && /opt/pip-install/bin/cloudvol version",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-3].startswith("cloudvol v0.")
