"""The temporary `.<name>.<hex>.partial` files uploads create on the server, kept
track of until each is renamed over its target or removed, so that none is left
behind by an outage or a crash.

An upload whose connection was lost cannot remove its temporary file; it is kept
as a leftover and removed once a connection is open again (`SftpStorage` sweeps
after every new connection). With a journal directory (a mount worker gives its
volume's cache directory), each temporary file in flight is also recorded there,
one small file per upload, so the leftovers of a worker that was killed are
removed by the next worker of that volume when it connects. Only names this
volume's uploads made are ever removed: the server is never listed for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from loguru import logger

_SUFFIX = ".partial"


class PartialFiles:
    """Temporary remote files: in flight (an upload owns them) or leftover (their
    upload ended without removing them)."""

    def __init__(self, journal_dir: str | None = None) -> None:
        self._journal_dir = journal_dir
        self._in_flight: set[str] = set()
        self._leftovers: set[str] = set()
        if journal_dir is not None:
            self._leftovers.update(self._read_journal(journal_dir))

    def created(self, remote: str) -> None:
        """An upload is about to create `remote` (recorded before it exists, so a
        crash at any point leaves it journaled)."""
        self._in_flight.add(remote)
        self._leftovers.discard(remote)
        if self._journal_dir is not None:
            try:
                os.makedirs(self._journal_dir, exist_ok=True)
                with open(self._entry(remote), "w", encoding="utf-8") as entry:
                    entry.write(remote)
            except OSError as exc:
                # The upload goes on; only its clean-up after a crash is lost.
                logger.warning("cannot record the temporary file {}: {}", remote, exc)

    def gone(self, remote: str) -> None:
        """`remote` was renamed over its target or removed."""
        self._in_flight.discard(remote)
        self._leftovers.discard(remote)
        if self._journal_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._entry(remote))

    def left_behind(self, remote: str) -> None:
        """`remote`'s upload ended without removing it (the connection was gone)."""
        self._in_flight.discard(remote)
        self._leftovers.add(remote)

    def leftovers(self) -> list[str]:
        return sorted(self._leftovers)

    def _entry(self, remote: str) -> str:
        assert self._journal_dir is not None
        digest = hashlib.sha256(remote.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return os.path.join(self._journal_dir, digest)

    @staticmethod
    def _read_journal(journal_dir: str) -> list[str]:
        """The temporary files a previous process recorded and did not see go."""
        try:
            names = os.listdir(journal_dir)
        except FileNotFoundError:
            return []
        found: list[str] = []
        for name in names:
            try:
                with open(os.path.join(journal_dir, name), encoding="utf-8") as entry:
                    remote = entry.read()
            except (OSError, UnicodeDecodeError) as exc:
                logger.warning("unreadable temporary-file record {}: {}", name, exc)
                continue
            # Only a name an upload makes is ever removed, whatever the record says.
            if os.path.basename(remote).startswith(".") and remote.endswith(_SUFFIX):
                found.append(remote)
        return found
