from __future__ import annotations

import pytest

from domain.errors import OptionError
from domain.log_format import log_format


def test_rclone_default_is_date_and_time() -> None:
    chosen = log_format("date,time")
    assert chosen.template == "{time:YYYY/MM/DD} {time:HH:mm:ss} {level: <7} {name}: {message}"
    assert not chosen.utc and not chosen.json


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("", "{level: <7} {name}: {message}"),
        ("time,microseconds", "{time:HH:mm:ss.SSSSSS} {level: <7} {name}: {message}"),
        ("date,UTC", "{time:YYYY/MM/DD!UTC} {level: <7} {name}: {message}"),
        ("pid,nolevel", "[{process}] {name}: {message}"),
        ("shortfile", "{file.name}:{line}: {level: <7} {name}: {message}"),
        ("longfile,shortfile", "{file.path}:{line}: {level: <7} {name}: {message}"),
    ],
)
def test_items_shape_the_line(items: str, expected: str) -> None:
    assert log_format(items).template == expected


def test_json_and_case() -> None:
    assert log_format("JSON,utc").json
    assert log_format("JSON,utc").utc


def test_unknown_items_are_named() -> None:
    with pytest.raises(OptionError) as info:
        log_format("date,colour")
    assert str(info.value).startswith('log-format: unknown item "colour"')
