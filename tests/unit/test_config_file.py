"""Reading the rclone-format config file from disk (adapters/config)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.config import ConfigFileSource, default_config_path, load_rclone_config
from domain.errors import OptionError
from domain.volume_options import parse_volume_options


def test_default_path_follows_xdg() -> None:
    assert default_config_path({"XDG_CONFIG_HOME": "/xdg"}) == "/xdg/cloudvol/cloudvol.conf"
    home = os.path.expanduser("~")
    assert default_config_path({}) == f"{home}/.config/cloudvol/cloudvol.conf"


def test_load_reads_sections_and_a_missing_file_is_no_error(tmp_path: Path) -> None:
    path = tmp_path / "rclone.conf"
    path.write_text("[box]\ntype = local\n")
    config = load_rclone_config(str(path))
    assert config.exists and config.path == str(path)
    assert config.value("box", "type") == "local"
    absent = load_rclone_config(str(tmp_path / "absent.conf"))
    assert not absent.exists and absent.sections == {}
    # Asking for a remote in a missing file names the file.
    with pytest.raises(OptionError, match=r"config file .*absent\.conf not found"):
        parse_volume_options({"remote": "box:/x"}, {}, absent)


def test_unreadable_or_malformed_files_are_option_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[r]\ntype = local\nsecret-without-equals\n")
    with pytest.raises(OptionError, match=rf"^config file {bad}: line 3: ") as info:
        load_rclone_config(str(bad))
    assert "secret-without-equals" not in str(info.value)
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(OptionError, match="is not UTF-8 text"):
        load_rclone_config(str(binary))
    with pytest.raises(OptionError, match=rf"^config file {tmp_path}: "):
        load_rclone_config(str(tmp_path))  # a directory


def test_source_rereads_the_file_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.conf"
    source = ConfigFileSource(str(path))
    assert not source.current().exists

    path.write_text("[a]\ntype = local\n")
    first = source.current()
    assert first.has_section("a")
    assert source.current() is first  # unchanged: not read again

    path.write_text("[a]\ntype = local\n[b]\ntype = memory\n")
    second = source.current()
    assert second.has_section("b")

    path.write_text("[a]\nbroken line\n")
    with pytest.raises(OptionError, match="line 2"):
        source.current()
    path.write_text("[c]\ntype = local\n")
    assert source.current().has_section("c")  # fixed: picked up again

    path.unlink()
    assert not source.current().exists
