"""domain.links and domain.metadata: rclone's link files and metadata keys."""

from __future__ import annotations

import pytest

from domain.links import link_file_name, link_name, show_links
from domain.metadata import FileMetadata, format_time, from_rclone_keys, parse_time, to_rclone_keys
from domain.remote_entry import RemoteEntry


def test_link_names() -> None:
    assert link_name("a.rclonelink") == "a"
    assert link_name(".rclonelink") is None
    assert link_name("a.txt") is None
    assert link_file_name("a") == "a.rclonelink"


def test_show_links_turns_link_files_into_links_and_real_names_win() -> None:
    entries = [
        RemoteEntry("a.rclonelink", False, 3, 1.0),
        RemoteEntry("b", False, 1, 1.0),
        RemoteEntry("b.rclonelink", False, 3, 1.0),
        RemoteEntry("d.rclonelink", True, 0, 1.0),  # a directory stays one
    ]
    shown = {e.name: e.is_link for e in show_links(entries)}
    assert shown == {"a": True, "b": False, "d.rclonelink": False}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000000Z"),
        (1.5, "1970-01-01T00:00:01.500000000Z"),
        (-1.0, "1969-12-31T23:59:59.000000000Z"),
        (4102444800.0, "2100-01-01T00:00:00.000000000Z"),
    ],
)
def test_times_round_trip(seconds: float, text: str) -> None:
    assert format_time(seconds) == text
    assert parse_time(text) == seconds


def test_parse_time_with_offset_and_short_fraction() -> None:
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time("1970-01-01T00:00:00.25Z") == 0.25


def test_rclone_keys_round_trip_and_bad_values_are_left_out() -> None:
    meta = FileMetadata(mode=0o755, uid=1, gid=2, atime=-10.0, mtime=5.0)
    keys = to_rclone_keys(meta)
    assert keys["mode"] == "755" and keys["uid"] == "1"
    assert from_rclone_keys(keys) == meta
    assert from_rclone_keys({"mode": "9x", "uid": "3"}) == FileMetadata(uid=3)


def test_merged_keeps_unset_fields() -> None:
    assert FileMetadata(mode=1, uid=2).merged(FileMetadata(uid=3)) == FileMetadata(mode=1, uid=3)
