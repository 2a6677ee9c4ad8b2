"""The daemon's start-up check that FUSE can be used on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

import adapters.fuse.host_check as host_check
from adapters.fuse.host_check import fuse_problems
from entrypoints.cli import main


def _everything_on_path(name: str) -> str:
    return f"/usr/bin/{name}"


def test_a_usable_device_and_fusermount3_leave_nothing_to_report() -> None:
    # /dev/null stands in for a device that opens for reading and writing.
    assert fuse_problems("/dev/null", which=_everything_on_path) == []


def test_a_missing_device_is_named_with_the_way_to_get_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "fuse")
    [problem] = fuse_problems(missing, which=_everything_on_path)
    assert problem.startswith(f"{missing} does not exist")
    assert "modprobe fuse" in problem
    assert "--device /dev/fuse" in problem


def test_a_device_that_cannot_be_opened_is_reported(tmp_path: Path) -> None:
    directory = str(tmp_path)  # opening a directory for writing fails with EISDIR
    [problem] = fuse_problems(directory, which=_everything_on_path)
    assert problem.startswith(f"{directory} cannot be opened")


def test_a_missing_fusermount3_names_the_package() -> None:
    [problem] = fuse_problems("/dev/null", which=lambda name: None)
    assert problem.startswith("fusermount3 is not on the PATH")
    assert "fuse3 package" in problem


def test_serve_docker_refuses_to_start_without_dev_fuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(host_check, "FUSE_DEVICE", str(tmp_path / "no-fuse"))
    socket_path = tmp_path / "plugin.sock"
    status = main(
        [
            "serve", "docker",
            "--cache-dir", str(tmp_path / "cache"),
            "--base-dir", str(tmp_path / "volumes"),
            "--socket-addr", str(socket_path),
        ]
    )  # fmt: skip
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot start: FUSE is not usable here" in err
    assert f"{tmp_path / 'no-fuse'} does not exist" in err
    assert not socket_path.exists()  # it stopped before serving anything
