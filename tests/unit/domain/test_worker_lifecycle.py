"""The mount worker's lifecycle, event by event, without processes."""

from __future__ import annotations

import pytest

from domain.worker_lifecycle import (
    JobMode,
    UnmountAction,
    WorkerLifecycle,
    same_job_apart_from_mode,
)


def mounted() -> WorkerLifecycle:
    life = WorkerLifecycle(JobMode.MOUNT)
    life.connected()
    life.mount_starting()
    life.mount_ready()
    return life


def test_a_mount_job_mounts_then_drains_lingers_and_serves_the_next_mount() -> None:
    life = mounted()
    assert life.state == "mounted"
    assert life.unmount() is UnmountAction.UNMOUNT
    life.unmounted()
    assert life.state == "draining"
    life.uploads_started()
    life.uploads_ended()
    assert life.lingers(30.0) and life.state == "idle"
    assert life.refuse_mount(answer_pending=False) is None
    assert life.mounts_again() and not life.mount_wanted


def test_without_linger_the_worker_exits_after_its_uploads() -> None:
    life = mounted()
    life.unmount()
    life.unmounted()
    assert not life.lingers(0.0)
    assert not life.mounts_again()


def test_a_standby_worker_says_standby_until_its_first_mount() -> None:
    life = WorkerLifecycle(JobMode.STANDBY)
    life.connected()
    assert life.state == "standby"
    life.unmounted()
    life.uploads_started()
    life.uploads_ended()
    assert life.lingers(30.0) and life.state == "standby"
    assert life.unmount() is UnmountAction.NOTHING
    assert life.refuse_mount(answer_pending=False) is None
    assert life.mounts_again()
    life.mount_starting()
    life.mount_ready()
    assert life.state == "mounted"


def test_a_drain_job_retires_at_once_and_never_mounts() -> None:
    life = WorkerLifecycle(JobMode.DRAIN)
    life.connected()
    assert (life.state, life.retiring) == ("draining", True)
    assert life.refuse_mount(answer_pending=False) == "the worker is exiting"
    life.unmounted()
    assert not life.lingers(30.0) and not life.mounts_again()


@pytest.mark.parametrize("state", ["starting", "mounted"])
def test_a_mount_request_is_refused_while_mounting_or_mounted(state: str) -> None:
    life = mounted()
    life.mount_starting()
    if state == "mounted":
        life.mount_ready()
    assert life.refuse_mount(answer_pending=False) == f"the worker is {state}, try again"


def test_a_second_mount_request_waits_for_the_first_answer() -> None:
    life = mounted()
    life.unmount()
    life.unmounted()
    assert life.refuse_mount(answer_pending=True) == "the worker is draining, try again"


def test_unmount_while_starting_calls_the_mount_off() -> None:
    life = WorkerLifecycle(JobMode.MOUNT)
    life.mount_starting()
    assert life.unmount() is UnmountAction.CANCEL_START
    assert life.stopped_early and life.never_ready()
    life.mount_starting()  # the next attempt starts afresh
    assert not life.stopped_early


def test_a_signal_while_uploading_stops_the_uploads_and_retires() -> None:
    life = mounted()
    life.unmount()
    life.unmounted()
    life.uploads_started()
    assert life.stop_signal()
    life.uploads_ended()
    assert life.retiring and not life.lingers(30.0) and not life.mounts_again()


def test_a_signal_while_mounted_retires_but_keeps_the_uploads() -> None:
    life = mounted()
    assert not life.stop_signal()
    assert life.retiring and not life.uploads_stopped


def test_a_standby_worker_stops_its_uploads_only_while_uploading() -> None:
    life = WorkerLifecycle(JobMode.STANDBY)
    life.connected()
    assert not life.stop_signal()  # waiting for its mount, nothing under way
    life = WorkerLifecycle(JobMode.STANDBY)
    life.connected()
    life.uploads_started()
    assert life.stop_signal()


def test_retiring_remembers_a_removed_volume() -> None:
    life = mounted()
    life.retire(volume_removed=True)
    life.retire()
    assert life.retiring and life.volume_removed


def test_a_standby_worker_serves_the_mount_job_it_was_started_for() -> None:
    assert same_job_apart_from_mode(JobMode.STANDBY, JobMode.MOUNT)
    assert same_job_apart_from_mode(JobMode.MOUNT, JobMode.MOUNT)
    assert not same_job_apart_from_mode(JobMode.DRAIN, JobMode.MOUNT)
