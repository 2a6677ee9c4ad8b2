"""loguru for the whole daemon: WARNING by default, -v INFO, -vv DEBUG; to stderr
or --log-file. Libraries logging through the standard `logging` module (hypercorn)
are routed into the same sink."""

from __future__ import annotations

import logging
import sys

from loguru import logger

from domain.log_format import log_format

_LEVELS = ("WARNING", "INFO", "DEBUG")
_FORMAT = "{time:YYYY/MM/DD HH:mm:ss} {level: <7} {name}: {message}"


def level_for(verbosity: int) -> str:
    return _LEVELS[max(0, min(verbosity, len(_LEVELS) - 1))]


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(
    level: str, log_file: str | None = None, log_format_items: str | None = None
) -> None:
    """`log_format_items`: rclone's --log-format list, None for cloudvol's layout."""
    logger.remove()
    template, serialize = _FORMAT, False
    if log_format_items is not None:
        chosen = log_format(log_format_items)
        template, serialize = chosen.template, chosen.json
    if log_file:
        logger.add(log_file, level=level, format=template, serialize=serialize, enqueue=False)
    else:
        logger.add(sys.stderr, level=level, format=template, serialize=serialize)
    logging.basicConfig(handlers=[_InterceptHandler()], level=level, force=True)
    quiet_connection_logs(level)


def quiet_connection_logs(level: str) -> None:
    """asyncssh tells every connection's open, auth and close at INFO, a dozen
    lines each: shown with -vv only, as rclone does not log them at -v either."""
    if level != "DEBUG":
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
