"""The daemon <-> mount worker protocol: job, readiness line, control messages,
worker file paths and /proc/self/mountinfo parsing."""

from __future__ import annotations

import json

import pytest

from adapters.mounting.protocol import (
    MAX_LINE,
    SHORT_SOCKET_DIR,
    ProtocolError,
    Readiness,
    WorkerJob,
    decode_message,
    decode_readiness,
    encode_failure,
    encode_ready,
    error_reply,
    find_mount,
    log_tail,
    ok_reply,
    parse_mountinfo,
    parse_request,
    parse_status,
    request,
    worker_paths,
)

JOB = WorkerJob(
    name="vol1",
    mountpoint="/var/lib/cloudvol/vol1",
    options={"remote": "/srv/data", "vfs-cache-mode": "writes"},
    defaults={"dir-cache-time": "5m"},
    cache_dir="/var/cache/cloudvol",
    control_socket="/var/cache/cloudvol/workers/vol1.sock",
    log_level="DEBUG",
    log_file=None,
    linger=10.0,
)


def test_job_round_trips_through_json() -> None:
    assert WorkerJob.from_json(JOB.to_json()) == JOB
    assert WorkerJob.from_json(JOB.to_json().encode()) == JOB


def test_job_has_the_documented_keys() -> None:
    assert set(json.loads(JOB.to_json())) == {
        "name",
        "mountpoint",
        "options",
        "defaults",
        "cache_dir",
        "control_socket",
        "log_level",
        "log_file",
        "mode",
        "config_path",
        "linger",
    }


def test_job_log_fields_are_optional() -> None:
    raw = json.loads(JOB.to_json())
    del raw["log_level"], raw["log_file"]
    job = WorkerJob.from_json(json.dumps(raw))
    assert (job.log_level, job.log_file) == ("INFO", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "'name'"),
        ({"mountpoint": 3}, "'mountpoint'"),
        ({"options": {"remote": 1}}, "'options'"),
        ({"defaults": ["x"]}, "'defaults'"),
        ({"log_file": 7}, "log_file"),
        ({"linger": -1}, "'linger'"),
        ({"linger": "5s"}, "'linger'"),
        ({"mode": "yes"}, "'mode'"),
        ({"mode": ["mount"]}, "'mode'"),
    ],
)
def test_bad_jobs_are_refused_with_the_field(change: dict[str, object], message: str) -> None:
    raw = json.loads(JOB.to_json())
    raw.update(change)
    with pytest.raises(ProtocolError, match=message):
        WorkerJob.from_json(json.dumps(raw))


def test_job_that_is_not_json_or_not_an_object() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        WorkerJob.from_json("{")
    with pytest.raises(ProtocolError, match="object"):
        WorkerJob.from_json("[]")


def test_readiness_lines() -> None:
    assert decode_readiness(encode_ready()) == Readiness(True)
    assert decode_readiness(b"rea") is None  # incomplete line: keep reading
    report = decode_readiness(encode_failure("directory /x is not empty"))
    assert report == Readiness(False, "directory /x is not empty")


def test_failure_text_is_one_line() -> None:
    line = encode_failure("first\nsecond\tthird  ")
    assert line == b"error first second third\n"
    assert encode_failure("   ") == b"error unknown error\n"


def test_unexpected_readiness_text_is_reported_not_trusted() -> None:
    report = decode_readiness(b"hello\n")
    assert report is not None and not report.ready
    assert "hello" in report.error


def test_requests_round_trip() -> None:
    for op in ("status", "unmount", "forget", "retire"):
        line = request(op)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert parse_request(line) == (op, {})
    job = {"name": "v", "options": {"remote": "a:b"}}
    assert parse_request(request("mount", job=job)) == ("mount", {"job": job})


def test_unknown_or_malformed_requests() -> None:
    with pytest.raises(ProtocolError, match="unknown op"):
        request("reboot")
    with pytest.raises(ProtocolError, match="unknown op"):
        parse_request(b'{"op": "reboot"}\n')
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_request(b"status\n")
    with pytest.raises(ProtocolError, match="object"):
        decode_message(b"[1]\n")
    with pytest.raises(ProtocolError, match="too long"):
        decode_message(b" " * (MAX_LINE + 1))


def test_status_reply_parses() -> None:
    reply = decode_message(ok_reply(pid=42, mountpoint="/m", state="mounted", volume="v"))
    status = parse_status(reply)
    assert (status.pid, status.mountpoint, status.state) == (42, "/m", "mounted")
    assert status.extra == {"volume": "v"}


def test_error_and_malformed_status_replies() -> None:
    with pytest.raises(ProtocolError, match="busy"):
        parse_status(decode_message(error_reply("busy")))
    with pytest.raises(ProtocolError, match="malformed"):
        parse_status({"ok": True, "pid": "12", "mountpoint": "/m", "state": "mounted"})
    with pytest.raises(ProtocolError, match="unknown worker state"):
        parse_status({"ok": True, "pid": 1, "mountpoint": "/m", "state": "sleeping"})


def test_worker_paths() -> None:
    paths = worker_paths("/var/cache/cloudvol/", "vol1")
    assert paths.directory == "/var/cache/cloudvol/workers"
    assert paths.socket == "/var/cache/cloudvol/workers/vol1.sock"
    assert paths.lock == "/var/cache/cloudvol/workers/vol1.lock"
    assert paths.log == "/var/cache/cloudvol/workers/vol1.log"


def test_socket_path_too_long_for_af_unix_is_hashed_and_stable() -> None:
    name = "v" * 120
    paths = worker_paths("/var/cache/cloudvol", name)
    assert len(paths.socket.encode()) <= 107
    assert paths.socket == worker_paths("/var/cache/cloudvol", name).socket
    assert paths.socket != worker_paths("/var/cache/cloudvol", "w" * 120).socket
    assert paths.lock.endswith(f"/{name}.lock")


MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "98 22 0:50 / /var/lib/cloudvol/my\\040vol rw,nosuid,nodev shared:60 - "
    "fuse.cloudvol local:/srv rw,user_id=0,group_id=0\n"
    "99 98 0:51 / /var/lib/cloudvol/my\\040vol rw - fuse.cloudvol local:/other rw\n"
    "garbage line\n"
)


def test_mountinfo_parsing_unescapes_and_reads_type_and_source() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [e.mountpoint for e in entries] == [
        "/",
        "/var/lib/cloudvol/my vol",
        "/var/lib/cloudvol/my vol",
    ]
    assert entries[1].fstype == "fuse.cloudvol"
    assert entries[1].source == "local:/srv"


def test_find_mount_returns_the_topmost() -> None:
    entry = find_mount(MOUNTINFO, "/var/lib/cloudvol/my vol")
    assert entry is not None and entry.source == "local:/other"
    assert find_mount(MOUNTINFO, "/var/lib/cloudvol/my\\040vol") is None
    assert find_mount(MOUNTINFO, "/var/lib/cloudvol") is None


def test_log_tail() -> None:
    text = "\n".join(f"line {i}" for i in range(50))
    assert log_tail(text, 3) == "line 47\nline 48\nline 49"
    assert log_tail("", 3) == ""


def test_a_cache_directory_too_deep_for_af_unix_gets_a_short_socket_path() -> None:
    deep = "/srv/" + "d" * 100
    paths = worker_paths(deep, "vol")
    assert len(paths.socket.encode()) <= 107
    assert paths.socket.startswith(SHORT_SOCKET_DIR + "/")
    assert paths.socket == worker_paths(deep, "vol").socket
    assert paths.socket != worker_paths(deep + "x", "vol").socket  # two daemons apart
    assert paths.lock == f"{deep}/workers/vol.lock"
