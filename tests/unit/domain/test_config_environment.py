"""Remotes from RCLONE_CONFIG_<NAME>_<KEY> and CLOUDVOL_CONFIG_<NAME>_<KEY>."""

from __future__ import annotations

from domain.config_environment import with_environment_remotes
from domain.rclone_config import missing_config, parse_rclone_config
from domain.volume_options import parse_volume_options

FILE = "[files]\ntype = sftp\nhost = files.example.org\nuser = me\n"


def test_a_remote_defined_only_in_the_environment_exists() -> None:
    config = with_environment_remotes(
        missing_config("/nowhere.conf"),
        {"CLOUDVOL_CONFIG_BACKUP_TYPE": "sftp", "CLOUDVOL_CONFIG_BACKUP_HOST": "b.example.org"},
    )
    assert config.exists
    assert config.value("backup", "type") == "sftp"
    assert config.value("backup", "host") == "b.example.org"


def test_rclones_spelling_works_unchanged() -> None:
    config = with_environment_remotes(
        missing_config("/nowhere.conf"),
        {"RCLONE_CONFIG_MYS3_TYPE": "s3", "RCLONE_CONFIG_MYS3_ACCESS_KEY_ID": "AK"},
    )
    assert config.value("mys3", "access_key_id") == "AK"


def test_the_environment_wins_over_the_file_and_cloudvol_over_rclone() -> None:
    config = with_environment_remotes(
        parse_rclone_config(FILE, "/etc/rclone.conf"),
        {
            "RCLONE_CONFIG_FILES_HOST": "rclone.example.org",
            "RCLONE_CONFIG_FILES_PORT": "2222",
            "CLOUDVOL_CONFIG_FILES_HOST": "cloudvol.example.org",
        },
    )
    assert config.value("files", "host") == "cloudvol.example.org"
    assert config.value("files", "port") == "2222"
    assert config.value("files", "user") == "me"  # the file's other keys stay


def test_unrelated_variables_change_nothing() -> None:
    config = parse_rclone_config(FILE, "/etc/rclone.conf")
    environ = {"CLOUDVOL_CONFIG": "/etc/x.conf", "CLOUDVOL_CONFIG_PASS": "secret", "HOME": "/"}
    assert with_environment_remotes(config, environ) is config


def test_a_volume_uses_a_remote_from_the_environment() -> None:
    config = with_environment_remotes(
        missing_config("/nowhere.conf"),
        {
            "RCLONE_CONFIG_BACKUP_TYPE": "sftp",
            "RCLONE_CONFIG_BACKUP_HOST": "b.example.org",
            "RCLONE_CONFIG_BACKUP_USER": "me",
        },
    )
    spec = parse_volume_options({"remote": "backup:/srv"}, {}, config).spec
    assert spec.backend.type == "sftp"
    assert spec.backend.root == "/srv"
