"""The daemon's log levels: -v is rclone's -v, without a library's per-connection chatter."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
