"""What the daemon and a mount worker say to each other, as pure functions.

- The job: one JSON object the daemon writes to the worker's stdin.
- Readiness: one line on the worker's status fd, `ready` or `error <text>`.
- Control: line-delimited JSON on the worker's unix socket; a request is
  `{"op": ...}`, a reply `{"ok": true, ...}` or `{"ok": false, "error": ...}`.
- Where a worker's socket, lock and log live, and how to read /proc/self/mountinfo.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.worker_lifecycle import STATES, JobMode, WorkerState

MAX_LINE = 64 * 1024
# unmount: take the mount away; the worker stays for the next mount for a while.
# mount: serve the mount again (the request carries the job, which must be the
# worker's own). retire: unmount if mounted, accept no more mounts, and exit once
# the uploads are done.
# stats, expire, refresh, forget-path: for `cloudvol status` and `cloudvol rc`
# (adapters.mounting.worker_admin).
OPS = (
    "status",
    "unmount",
    "forget",
    "mount",
    "retire",
    "stats",
    "expire",
    "refresh",
    "forget-path",
)
# The states a worker reports are `domain.worker_lifecycle.STATES`.

# AF_UNIX paths are limited to 108 bytes including the NUL.
_MAX_SOCKET_PATH = 107
# Where control sockets go when the cache directory is too deep for AF_UNIX (108
# bytes): owned by root, mode 0700 (see `MountWorker._listen`).
SHORT_SOCKET_DIR = "/run/cloudvol"


class ProtocolError(ValueError):
    """A malformed job, request or reply."""


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs: raw options, re-parsed in the worker, so no typed
    spec is serialised."""

    name: str
    mountpoint: str
    options: dict[str, str]
    defaults: dict[str, str]
    cache_dir: str
    control_socket: str
    log_level: str = "INFO"
    log_file: str | None = None
    config_path: str | None = None  # the path, not the contents: a job carries no secrets
    mode: JobMode = JobMode.MOUNT
    # Seconds an unmounted worker with nothing left to upload waits for the next
    # Mount (Docker mounts twice per `docker run`); 0: it exits at once.
    linger: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "mountpoint": self.mountpoint,
                "options": self.options,
                "defaults": self.defaults,
                "cache_dir": self.cache_dir,
                "control_socket": self.control_socket,
                "log_level": self.log_level,
                "log_file": self.log_file,
                "config_path": self.config_path,
                "mode": self.mode.value,
                "linger": self.linger,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerJob:
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise ProtocolError(f"mount job is not JSON: {e}") from e
        if not isinstance(raw, dict):
            raise ProtocolError("mount job must be a JSON object")
        strings = ("name", "mountpoint", "cache_dir", "control_socket")
        for key in strings:
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ProtocolError(f"mount job: {key!r} must be a non-empty string")
        maps = {key: _string_map(raw.get(key, {}), key) for key in ("options", "defaults")}
        log_level = raw.get("log_level", "INFO")
        log_file = raw.get("log_file")
        config_path = raw.get("config_path")
        if not isinstance(log_level, str) or not all(
            v is None or isinstance(v, str) for v in (log_file, config_path)
        ):
            raise ProtocolError("mount job: 'log_level'/'log_file'/'config_path' must be strings")
        try:
            mode = JobMode(raw.get("mode", JobMode.MOUNT.value))
        except (ValueError, TypeError):
            modes = ", ".join(m.value for m in JobMode)
            raise ProtocolError(f"mount job: 'mode' must be one of {modes}") from None
        linger = raw.get("linger", 0.0)
        if isinstance(linger, bool) or not isinstance(linger, int | float) or linger < 0:
            raise ProtocolError("mount job: 'linger' must be a number of seconds, 0 or more")
        return cls(
            name=raw["name"],
            mountpoint=raw["mountpoint"],
            options=maps["options"],
            defaults=maps["defaults"],
            cache_dir=raw["cache_dir"],
            control_socket=raw["control_socket"],
            log_level=log_level,
            log_file=log_file or None,
            config_path=config_path or None,
            mode=mode,
            linger=float(linger),
        )


def _string_map(value: object, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ProtocolError(f"mount job: {key!r} must map strings to strings")
    return dict(value)


# --- readiness -------------------------------------------------------------


def encode_ready() -> bytes:
    return b"ready\n"


def encode_failure(message: str) -> bytes:
    # One line: newlines in a traceback-ish message would split the report.
    flat = " ".join(message.split()) or "unknown error"
    return f"error {flat}\n".encode()


@dataclass(frozen=True)
class Readiness:
    ready: bool
    error: str = ""


def decode_readiness(data: bytes) -> Readiness | None:
    """The worker's report, or None if no complete line has arrived yet."""
    line, sep, _ = data.partition(b"\n")
    if not sep:
        return None
    text = line.decode(errors="replace").strip()
    if text == "ready":
        return Readiness(True)
    if text.startswith("error"):
        return Readiness(False, text[len("error") :].strip() or "unknown error")
    return Readiness(False, f"unexpected report from mount worker: {text!r}")


# --- control socket ---------------------------------------------------------


def encode_message(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_message(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ProtocolError("control message too long")
    try:
        value = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"control message is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise ProtocolError("control message must be a JSON object")
    return value


def request(op: str, **fields: Any) -> bytes:
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}")
    return encode_message({"op": op, **fields})


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """The op and the request's other fields."""
    message = decode_message(line)
    op = message.pop("op", None)
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    return str(op), message


def ok_reply(**fields: Any) -> bytes:
    return encode_message({"ok": True, **fields})


def error_reply(message: str) -> bytes:
    return encode_message({"ok": False, "error": message})


@dataclass(frozen=True)
class WorkerStatus:
    pid: int
    mountpoint: str
    state: WorkerState
    extra: dict[str, Any] = field(default_factory=dict)


def parse_status(reply: Mapping[str, Any]) -> WorkerStatus:
    if reply.get("ok") is not True:
        raise ProtocolError(str(reply.get("error") or "worker refused the request"))
    pid, mountpoint, state = reply.get("pid"), reply.get("mountpoint"), reply.get("state")
    if not isinstance(pid, int) or not isinstance(mountpoint, str):
        raise ProtocolError(f"malformed status reply: {dict(reply)!r}")
    if state not in STATES:
        raise ProtocolError(f"unknown worker state {state!r}")
    rest = {k: v for k, v in reply.items() if k not in ("ok", "pid", "mountpoint", "state")}
    return WorkerStatus(pid, mountpoint, state, rest)


# --- files -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerPaths:
    directory: str
    socket: str
    lock: str
    log: str


def worker_paths(cache_dir: str, name: str) -> WorkerPaths:
    """`<cache-dir>/workers/<name>.{sock,lock,log}`; a socket path too long for
    AF_UNIX uses a hash of the name instead (the lock and log keep the name), and
    under a cache directory too deep even for that, a hash of both in
    `SHORT_SOCKET_DIR`."""
    directory = cache_dir.rstrip("/") + "/workers"
    socket = f"{directory}/{name}.sock"
    if len(socket.encode()) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        socket = f"{directory}/{digest}.sock"
    if len(socket.encode()) > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(f"{directory}\0{name}".encode()).hexdigest()[:24]
        socket = f"{SHORT_SOCKET_DIR}/{digest}.sock"
    return WorkerPaths(directory, socket, f"{directory}/{name}.lock", f"{directory}/{name}.log")


# --- /proc/self/mountinfo ----------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fstype: str
    source: str


def _unescape(field_: str) -> str:
    # The kernel writes space, tab, newline and backslash as \ooo octal escapes.
    out, i = [], 0
    while i < len(field_):
        c = field_[i]
        code = field_[i + 1 : i + 4]
        if c == "\\" and len(code) == 3 and all(d in "01234567" for d in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        entries.append(
            MountEntry(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2]))
        )
    return entries


def find_mount(text: str, mountpoint: str) -> MountEntry | None:
    """The last (topmost) mount at `mountpoint`, or None."""
    found = None
    for entry in parse_mountinfo(text):
        if entry.mountpoint == mountpoint:
            found = entry
    return found


def log_tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])
