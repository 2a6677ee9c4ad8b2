from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.state_records import (
    RecordError,
    format_go_time,
    format_rfc3339,
    parse_go_time,
    record_from_dict,
    volume_to_record,
)
from domain.volume import BackendSpec, Volume, VolumeSpec

# Two records as rclone 1.60.1 writes them (json.Marshal of its Volume struct):
# no spaces, `type`/`path` omitted when empty, Go's RFC3339Nano time.
RCLONE_STATE = (
    '[{"name":"remote1","mountpoint":"/var/lib/docker-volumes/rclone/remote1",'
    '"created":"2023-02-14T10:20:30.123456789+01:00",'
    '"fs":":sftp,host=example.org,user=me:/home/me",'
    '"options":{"allow-other":"true","vfs-cache-mode":"writes"},"mounts":["abc123"]},'
    '{"name":"typed","mountpoint":"/var/lib/docker-volumes/rclone/typed",'
    '"created":"2023-02-14T09:00:00Z","fs":"","type":"sftp","path":"/srv",'
    '"options":{"sftp-host":"h","sftp-user":"u"},"mounts":[]}]'
)


def _volume(**overrides: object) -> Volume:
    fields: dict[str, object] = {
        "name": "data",
        "mountpoint": "/base/data",
        "created_at": datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=UTC),
        "options": {"type": "sftp", "path": "/srv", "sftp-host": "h", "read-only": "true"},
        "spec": VolumeSpec(backend=BackendSpec(type="sftp", root="/srv")),
        "type": "sftp",
        "path": "/srv",
        "mount_ids": ["z", "a"],
    }
    fields.update(overrides)
    return Volume(**fields)  # type: ignore[arg-type]


def test_reads_rclone_1_60_1_records() -> None:
    first, second = (record_from_dict(r) for r in json.loads(RCLONE_STATE))

    assert first.name == "remote1"
    assert first.mountpoint == "/var/lib/docker-volumes/rclone/remote1"
    assert first.created_at == datetime(
        2023, 2, 14, 10, 20, 30, 123456, tzinfo=timezone(timedelta(hours=1))
    )
    assert first.fs == ":sftp,host=example.org,user=me:/home/me"
    assert (first.type, first.path) == ("", "")
    assert first.mounts == ("abc123",)
    assert first.volume_options() == {
        "allow-other": "true",
        "vfs-cache-mode": "writes",
        "fs": ":sftp,host=example.org,user=me:/home/me",
    }

    assert second.created_at == datetime(2023, 2, 14, 9, 0, tzinfo=UTC)
    assert second.mounts == ()
    # rclone drops `path` when restoring; we keep it.
    assert second.volume_options() == {
        "sftp-host": "h",
        "sftp-user": "u",
        "type": "sftp",
        "path": "/srv",
    }


def test_writes_rclones_shape() -> None:
    record = volume_to_record(_volume())
    assert list(record) == [
        "name",
        "mountpoint",
        "created",
        "fs",
        "type",
        "path",
        "options",
        "mounts",
    ]
    assert record["created"] == "2024-05-06T07:08:09.12Z"
    # The lifted options live in their own fields, not in `options`.
    assert record["options"] == {"read-only": "true", "sftp-host": "h"}
    assert record["mounts"] == ["a", "z"]


def test_empty_type_and_path_are_omitted_like_go_omitempty() -> None:
    volume = _volume(options={"remote": ":sftp:/x"}, fs=":sftp:/x", type="", path="")
    record = volume_to_record(volume)
    assert "type" not in record and "path" not in record
    assert record["fs"] == ":sftp:/x"
    assert record["options"] == {}


def test_round_trip() -> None:
    volume = _volume()
    record = record_from_dict(json.loads(json.dumps(volume_to_record(volume))))
    assert record.name == volume.name
    assert record.created_at == volume.created_at
    assert record.mounts == ("a", "z")
    assert record.volume_options() == volume.options


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"mountpoint": "/x"}, "name"),
        ({"name": ""}, "name"),
        ({"name": 3}, "name"),
        ({"name": "v", "created": "yesterday"}, "yesterday"),
        ({"name": "v", "created": "2023-02-30T00:00:00Z"}, "2023-02-30"),
        ({"name": "v", "options": ["a"]}, "options"),
        ({"name": "v", "options": {"a": 1}}, "options"),
        ({"name": "v", "mounts": "abc"}, "mounts"),
        ({"name": "v", "fs": 7}, "fs"),
    ],
)
def test_bad_records_are_refused(data: dict[str, object], field: str) -> None:
    with pytest.raises(RecordError, match=field):
        record_from_dict(data)


def test_null_options_and_mounts_read_as_empty() -> None:
    record = record_from_dict({"name": "v", "options": None, "mounts": None, "type": "local"})
    assert record.options == {} and record.mounts == ()
    assert record.created_at == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "micro", "offset_minutes"),
    [
        ("2023-02-14T10:20:30Z", 0, 0),
        ("2023-02-14T10:20:30.5Z", 500000, 0),
        ("2023-02-14T10:20:30.000000001-07:30", 0, -450),
        ("2023-02-14t10:20:30.999999999+05:45", 999999, 345),
    ],
)
def test_parse_go_time(text: str, micro: int, offset_minutes: int) -> None:
    parsed = parse_go_time(text)
    assert parsed.microsecond == micro
    assert parsed.utcoffset() == timedelta(minutes=offset_minutes)


def test_format_go_time_and_rfc3339() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_go_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=plus_two)) == (
        "2024-01-02T03:04:05+02:00"
    )
    assert format_go_time(datetime(2024, 1, 2, 3, 4, 5, 100, tzinfo=UTC)) == (
        "2024-01-02T03:04:05.0001Z"
    )
    assert format_rfc3339(datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=plus_two)) == (
        "2024-01-02T03:04:05+02:00"
    )
    assert format_rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
