"""The errno a VFS call fails with, for the VFS unit tests."""

from __future__ import annotations


async def errno_of(coro: object) -> int:
    try:
        await coro  # type: ignore[misc]
    except OSError as exc:
        return exc.errno or -1
    raise AssertionError("no error raised")
