"""A mount worker's lifecycle, as a state machine with no I/O.

The worker (`adapters.mounting.worker`) runs the mounts, the uploads and the
control socket; this decides what each event means: which state the worker
reports, whether it takes a mount request, whether it lingers or exits, and
whether a removed volume's cache goes with it.

States, as the worker reports them on its control socket:
- starting: a mount is being set up;
- mounted: the mount is live;
- draining: unmounted (or a drain job), uploading what is pending;
- idle: unmounted, nothing left to upload, waiting `linger` seconds for a mount;
- standby: started ahead of its volume's first Mount, not mounted yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, get_args

WorkerState = Literal["starting", "mounted", "draining", "idle", "standby"]
STATES: tuple[WorkerState, ...] = get_args(WorkerState)
# Not mounted and not mounting: a mount request is served from these.
_UNMOUNTED: tuple[WorkerState, ...] = ("draining", "idle", "standby")


class JobMode(Enum):
    MOUNT = "mount"  # serve the mount at once
    # Connect and wait for the volume's first Mount (so it costs no more than the
    # next ones), uploading meanwhile what a killed worker left.
    STANDBY = "standby"
    DRAIN = "drain"  # never mount: upload what a killed worker left, then exit


def same_job_apart_from_mode(own: JobMode, asked: JobMode) -> bool:
    """Whether a mount asked with `asked` fits a worker started as `own`: a standby
    worker exists to serve exactly the Mount its job names."""
    return own is asked or {own, asked} == {JobMode.MOUNT, JobMode.STANDBY}


class UnmountAction(Enum):
    NOTHING = "nothing"  # not mounted
    CANCEL_START = "cancel start"  # a mount is being set up: abandon it
    UNMOUNT = "unmount"  # take the live mount away


@dataclass
class WorkerLifecycle:
    mode: JobMode
    state: WorkerState = "starting"
    retiring: bool = False  # no more mounts: exit once the uploads are done
    volume_removed: bool = False  # retired by `docker volume rm`: the cache goes too
    mount_wanted: bool = False  # a mount request waits for the worker to serve it
    uploading: bool = False
    uploads_stopped: bool = False  # a signal stopped the uploads: exit without them
    stopped_early: bool = False  # the mount being set up was called off

    def connected(self) -> None:
        """The remote answered and the VFS is up; a mount job mounts next."""
        if self.mode is JobMode.DRAIN:
            self.retiring = True  # nothing to serve: done once uploaded
            self.state = "draining"
        elif self.mode is JobMode.STANDBY:
            self.state = "standby"

    def mount_starting(self) -> None:
        self.state = "starting"
        self.stopped_early = False

    def mount_ready(self) -> None:
        self.state = "mounted"

    def never_ready(self) -> bool:
        """After a mount's session ended: whether it ended before it was live."""
        return self.state == "starting"

    def unmounted(self) -> None:
        """The mount is gone (or never came): the uploads come next. A standby
        worker that never mounted keeps saying so."""
        if self.state != "standby":
            self.state = "draining"

    def uploads_started(self) -> None:
        self.uploading = True

    def uploads_ended(self) -> None:
        self.uploading = False
        if self.uploads_stopped:
            self.retiring = True

    def lingers(self, linger: float) -> bool:
        """Whether to wait for a mount after the uploads (in state idle)."""
        if self.mount_wanted or self.retiring or linger <= 0:
            return False
        if self.state != "standby":
            self.state = "idle"
        return True

    def mounts_again(self) -> bool:
        """After the uploads (and the linger): whether to serve another mount;
        False means the worker exits."""
        if self.mount_wanted and not self.retiring:
            self.mount_wanted = False
            return True
        return False

    def unmount(self) -> UnmountAction:
        if self.state in _UNMOUNTED:
            return UnmountAction.NOTHING
        if self.state == "starting":
            self.stopped_early = True
            return UnmountAction.CANCEL_START
        self.state = "draining"
        return UnmountAction.UNMOUNT

    def retire(self, *, volume_removed: bool = False) -> None:
        self.retiring = True
        self.volume_removed = self.volume_removed or volume_removed

    def stop_signal(self) -> bool:
        """SIGTERM or SIGINT: retire, and while uploading stop the uploads too (the
        pending files stay recorded in the cache, for the volume's next worker).
        Returns whether the uploads are to stop."""
        if self.state == "draining" or (self.state == "standby" and self.uploading):
            self.uploads_stopped = True
        self.retire()
        return self.uploads_stopped

    def refuse_mount(self, *, answer_pending: bool) -> str | None:
        """Why a mount request is refused, or None when it is taken (the worker
        then serves it after the uploads under way are handed over)."""
        if self.retiring:
            return "the worker is exiting"
        if self.state not in _UNMOUNTED or answer_pending:
            return f"the worker is {self.state}, try again"
        self.mount_wanted = True
        return None
