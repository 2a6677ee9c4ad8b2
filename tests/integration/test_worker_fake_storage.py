"""The production mount worker over an in-memory remote, supplied through the
WorkerContainer's storage override: the worker's code does not know the
difference, so what it does with the remote can be read back exactly."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

from adapters.mounting.protocol import WorkerJob
from tests.integration.fixtures.fuse_mount import REPO, is_mounted


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
    return process.stdout.readline().strip() if ready else ""


def test_a_worker_serves_and_uploads_to_an_in_memory_remote(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    job = WorkerJob(
        name="vol",
        mountpoint=str(mountpoint),
        # The backend is never built: the container's storage is the memory one.
        options={"type": "local", "path": "/nonexistent", "vfs-cache-mode": "writes"},
        defaults={},
        cache_dir=str(tmp_path / "cache"),
        control_socket=str(tmp_path / "cache" / "vol.sock"),
    )
    seed = {"hello.txt": "hello from memory", "d/inner.txt": "inside"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.fixtures.memory_worker",
            job.to_json(),
            json.dumps(seed),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert _read_line(process, time.monotonic() + 30) == "READY"
        assert (mountpoint / "hello.txt").read_text() == "hello from memory"
        assert sorted(p.name for p in mountpoint.iterdir()) == ["d", "hello.txt"]
        (mountpoint / "d" / "new.txt").write_text("written through FUSE")
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)
        assert process.wait(timeout=30) == 0  # after uploading what was pending
        remote = json.loads(_read_line(process, time.monotonic() + 5).removeprefix("REMOTE "))
        assert remote == {**seed, "d/new.txt": "written through FUSE"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
