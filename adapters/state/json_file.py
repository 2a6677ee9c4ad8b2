"""The state file, `<cache-dir>/docker-plugin.state`: rclone's JSON list of volumes.

rclone rewrites it in place, so a crash mid-write loses every volume, and a file it
cannot parse makes it start empty and overwrite the file at the next save. Here a
save goes to a temporary file that is fsynced and renamed over the old one, and a
file that cannot be parsed is moved aside, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time

from loguru import logger

STATE_FILE_NAME = "docker-plugin.state"


class JsonStateFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> list[dict[str, object]]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            self._move_aside(f"it is not valid JSON ({exc})")
            return []
        if parsed is None:  # Go's json.Marshal of a nil slice
            return []
        if not isinstance(parsed, list) or not all(isinstance(r, dict) for r in parsed):
            self._move_aside("it is not a JSON list of volume objects")
            return []
        return parsed

    def save(self, records: list[dict[str, object]]) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        data = json.dumps(records, separators=(",", ":")).encode()
        # mkstemp makes the file 0600 whatever the umask.
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{self.path}.corrupt-{stamp}"
        n = 1
        while os.path.exists(target):  # two corrupt files within one second
            target = f"{self.path}.corrupt-{stamp}-{n}"
            n += 1
        os.replace(self.path, target)
        logger.error(
            "state file {} cannot be read: {}; moved it to {} and starting with no volumes",
            self.path,
            why,
            target,
        )
