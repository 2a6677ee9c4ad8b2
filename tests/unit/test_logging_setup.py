"""The daemon's log levels: -v is rclone's -v, without a library's per-connection chatter."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from entrypoints.logging_setup import configure_logging, level_for


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    library = logging.getLogger("asyncssh")
    saved = library.level
    yield
    library.setLevel(saved)
    logging.basicConfig(force=True)
    logger.remove()


def test_verbosity_maps_to_levels() -> None:
    assert [level_for(v) for v in (0, 1, 2, 5)] == ["WARNING", "INFO", "DEBUG", "DEBUG"]


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_asyncssh_connection_lines_only_at_debug(level: str, shown: bool) -> None:
    logging.getLogger("asyncssh").setLevel(logging.NOTSET)
    configure_logging(level)
    assert logging.getLogger("asyncssh").isEnabledFor(logging.INFO) is shown
    assert logging.getLogger("asyncssh").isEnabledFor(logging.WARNING)


def test_log_format_shapes_the_daemons_lines(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    configure_logging("INFO", str(log), "pid,nolevel")
    logger.info("hello")
    text = log.read_text()
    assert text.strip().endswith("hello") and f"[{os.getpid()}]" in text
    assert "INFO" not in text
    as_json = tmp_path / "json.log"
    configure_logging("INFO", str(as_json), "json")
    logger.info("structured")
    record = json.loads(as_json.read_text().splitlines()[0])
    assert record["record"]["message"] == "structured"
