"""Daemon flags from `CLOUDVOL_<FLAG>` environment variables; the command line wins."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

import pytest

from entrypoints.cli import build_parser, main, serve_docker_parser, settings_from_args
from entrypoints.environment import apply_environment
from entrypoints.serve_docker import ServeSettings


def _parse(argv: list[str], environ: Mapping[str, str]) -> argparse.Namespace:
    parser = build_parser()
    serve = serve_docker_parser(parser)
    apply_environment(serve, environ)
    return parser.parse_args(["serve", "docker", *argv])


def _settings(argv: list[str], environ: Mapping[str, str]) -> ServeSettings:
    return settings_from_args(_parse(argv, environ))


def test_a_mount_option_comes_from_the_environment() -> None:
    settings = _settings([], {"CLOUDVOL_VFS_CACHE_MODE": "writes"})
    assert settings.daemon_defaults["vfs-cache-mode"] == "writes"


def test_the_command_line_wins_over_the_environment() -> None:
    settings = _settings(["--vfs-cache-mode", "full"], {"CLOUDVOL_VFS_CACHE_MODE": "writes"})
    assert settings.daemon_defaults["vfs-cache-mode"] == "full"


def test_daemon_flags_come_from_the_environment() -> None:
    settings = _settings(
        [],
        {
            "CLOUDVOL_CACHE_DIR": "/srv/cache",
            "CLOUDVOL_CONFIG": "/etc/cloudvol/rclone.conf",
            "CLOUDVOL_VERBOSE": "2",
            "CLOUDVOL_SOCKET_GID": "123",
            "CLOUDVOL_NO_SPEC": "true",
        },
    )
    assert settings.cache_dir == "/srv/cache"
    assert settings.config_path == "/etc/cloudvol/rclone.conf"
    assert settings.log_level == "DEBUG"
    assert settings.socket_gid == 123
    assert settings.no_spec is True


def test_a_boolean_flag_can_be_switched_off_in_the_environment() -> None:
    assert _settings([], {"CLOUDVOL_FORGET_STATE": "false"}).forget_state is False
    assert (
        _settings([], {"CLOUDVOL_ALLOW_OTHER": "false"}).daemon_defaults["allow-other"] == "false"
    )
    assert _settings([], {"CLOUDVOL_ALLOW_OTHER": "true"}).daemon_defaults["allow-other"] == "true"


def test_a_list_flag_takes_comma_separated_values() -> None:
    settings = _settings([], {"CLOUDVOL_FUSE_FLAG": "a,b"})
    assert settings.daemon_defaults["fuse-flag"] == "a,b"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CLOUDVOL_VERBOSE", "lots", "CLOUDVOL_VERBOSE='lots': a count is expected"),
        ("CLOUDVOL_NO_SPEC", "yes", "CLOUDVOL_NO_SPEC='yes': true or false is expected"),
    ],
)
def test_a_malformed_variable_is_named(
    variable: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "docker", "--help"], environ={variable: value}) == 2
    assert expected in capsys.readouterr().err


def test_a_malformed_option_value_from_the_environment_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["serve", "docker"], environ={"CLOUDVOL_VFS_CACHE_MODE": "bogus"})
    assert status == 2
    assert 'invalid cache mode "bogus"' in capsys.readouterr().err


def test_help_names_each_flags_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "docker", "--help"], environ={}) == 0
    # argparse wraps help text: compare without line breaks and indentation
    text = " ".join(capsys.readouterr().out.split())
    for variable in (
        "CLOUDVOL_CACHE_DIR",
        "CLOUDVOL_VERBOSE",
        "CLOUDVOL_SOCKET_ADDR",
        "CLOUDVOL_VFS_CACHE_MODE",
        "CLOUDVOL_DIR_CACHE_TIME",
    ):
        assert f"[env {variable}]" in text
