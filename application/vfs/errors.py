"""The VFS's error boundary: every public operation raises only `OSError` with
an errno, ready for a FUSE reply."""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from loguru import logger

from domain.cache_policy import OpenRefused
from domain.errors import RemoteUnavailable
from domain.paths import UnsafePath

P = ParamSpec("P")
T = TypeVar("T")


def errno_boundary(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every failure into an OSError with an errno, logging the ones the
    caller cannot explain (an unreachable remote, a bug)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except OSError as exc:
            if not exc.errno:
                logger.error("{}: {!r}", fn.__name__, exc)
                raise OSError(errno.EIO, str(exc)) from exc
            raise
        except RemoteUnavailable as exc:
            logger.error("{}: remote unavailable: {}", fn.__name__, exc)
            raise OSError(errno.EIO, f"remote unavailable: {exc}") from exc
        except UnsafePath as exc:
            raise OSError(errno.EINVAL, str(exc)) from exc
        except OpenRefused as exc:
            raise exc.to_oserror() from exc
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            logger.exception("{}: unexpected error", fn.__name__)
            raise OSError(errno.EIO, f"{type(exc).__name__}: {exc}") from exc

    return wrapper
