"""pyfuse3's complaint about a reply nobody waits for any more (ENOENT) is shown at
DEBUG; its other reply failures stay errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from adapters.fuse.mount import _quiet_stale_replies


@pytest.fixture
def pyfuse3_records() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("pyfuse3")
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield records
    log.removeHandler(handler)
    log.setLevel(level)


def test_a_stale_reply_is_debug_and_other_failures_stay_errors(
    pyfuse3_records: list[logging.LogRecord],
) -> None:
    _quiet_stale_replies()
    _quiet_stale_replies()  # once per mount: the filter is added once
    log = logging.getLogger("pyfuse3")
    log.error("fuse_release(): fuse_reply_* failed with %s", "No such file or directory")
    log.error("fuse_write(): fuse_reply_* failed with %s", "Broken pipe")
    assert [(r.levelname, r.getMessage()) for r in pyfuse3_records] == [
        ("DEBUG", "fuse_release(): fuse_reply_* failed with No such file or directory"),
        ("ERROR", "fuse_write(): fuse_reply_* failed with Broken pipe"),
    ]
    assert len(log.filters) == 1
