"""A spare worker lowers its priority only where it may raise it again: root in a
managed plugin without CAP_SYS_NICE may not, and then every Mount failed."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os, entrypoints.mount_worker as m;"
    "before = os.getpriority(os.PRIO_PROCESS, 0);"
    "restore = m._yield_cpu();"
    "print(restore == before if restore is not None else None,"
    " os.getpriority(os.PRIO_PROCESS, 0) > before)"
)


def _probe(*wrapper: str) -> str:
    return subprocess.run(
        [*wrapper, sys.executable, "-c", PROBE],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip


def test_with_cap_sys_nice_a_spare_yields_and_can_restore() -> None:
    assert os.geteuid() == 0, "unit tests run as root in CI, as the daemon does"
    assert _probe() == "True True"


def test_without_cap_sys_nice_a_spare_keeps_its_priority() -> None:
    drop = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--"]
    assert _probe(*drop) == "None False"
