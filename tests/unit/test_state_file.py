from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from adapters.state.json_file import STATE_FILE_NAME, JsonStateFile

RECORDS: list[dict[str, object]] = [
    {"name": "a", "mountpoint": "/b/a", "created": "2024-01-01T00:00:00Z", "fs": "", "mounts": []}
]


@pytest.fixture
def errors() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    yield lines
    logger.remove(sink)


def test_missing_file_loads_empty(tmp_path: Path) -> None:
    assert JsonStateFile(str(tmp_path / STATE_FILE_NAME)).load() == []


def test_save_is_atomic_private_and_leaves_no_temp(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # created by save
    path = cache / STATE_FILE_NAME
    store = JsonStateFile(str(path))
    old_umask = os.umask(0)
    try:
        store.save(RECORDS)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(cache) == [STATE_FILE_NAME]
    # Compact like Go's json.Marshal, so rclone and cloudvol files look alike.
    assert path.read_text() == json.dumps(RECORDS, separators=(",", ":"))
    assert store.load() == RECORDS

    inode = path.stat().st_ino
    store.save([])
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert store.load() == []


def test_failed_save_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    store = JsonStateFile(str(path))
    store.save(RECORDS)
    with pytest.raises(TypeError):
        store.save([{"name": object()}])
    assert store.load() == RECORDS

    blocked = JsonStateFile(str(tmp_path / "dir-in-the-way"))
    (tmp_path / "dir-in-the-way").mkdir()
    (tmp_path / "dir-in-the-way" / "x").write_text("")
    with pytest.raises(OSError):
        blocked.save(RECORDS)
    assert sorted(os.listdir(tmp_path)) == ["dir-in-the-way", STATE_FILE_NAME]


@pytest.mark.parametrize(
    "content",
    [b'[{"name": "a"', b"", b'{"name": "a"}', b'["a"]', b"\xff\xfe"],
    ids=["truncated", "empty", "object", "list-of-strings", "not-utf8"],
)
def test_corrupt_file_is_moved_aside_and_reported(
    tmp_path: Path, errors: list[str], content: bytes
) -> None:
    path = tmp_path / STATE_FILE_NAME
    path.write_bytes(content)
    store = JsonStateFile(str(path))

    assert store.load() == []

    assert not path.exists()
    [aside] = [p for p in tmp_path.iterdir() if p.name != STATE_FILE_NAME]
    assert re.fullmatch(rf"{re.escape(STATE_FILE_NAME)}\.corrupt-\d{{8}}T\d{{6}}Z", aside.name)
    assert aside.read_bytes() == content
    [message] = errors
    assert str(path) in message and str(aside) in message

    # Saving afterwards writes a fresh file and leaves the corrupt copy alone.
    store.save(RECORDS)
    assert store.load() == RECORDS
    assert aside.read_bytes() == content


def test_two_corrupt_files_in_one_second_both_kept(tmp_path: Path, errors: list[str]) -> None:
    path = tmp_path / STATE_FILE_NAME
    store = JsonStateFile(str(path))
    path.write_text("first")
    store.load()
    path.write_text("second")
    store.load()
    contents = sorted(p.read_text() for p in tmp_path.iterdir())
    assert contents == ["first", "second"]
    assert len(errors) == 2


def test_null_is_an_empty_state(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    path.write_text("null")
    assert JsonStateFile(str(path)).load() == []
    assert path.exists()
