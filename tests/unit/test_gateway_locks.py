"""Locks in a DIY backend: removed only when their owner is provably gone, never for their age; `prenv unlock`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prenv.cli import app
from prenv.errors import StackLocked
from prenv.gateway.backend import DiyBackend, FileStore, LockInfo
from prenv.gateway.locks import Owner, clear_stale_locks, is_stale, owner_of
from prenv.procs import process_start_time

HOST = socket.gethostname()
OTHER_HOST = "ci-runner-7"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock(pid: int | None, host: str | None = HOST, age_seconds: float = 0) -> LockInfo:
    """A lock taken ``age_seconds`` ago (a live owner's lock is younger than the owner, so the default is now)."""
    return LockInfo(key="k.json", pid=pid, hostname=host, timestamp=datetime.now(UTC) - timedelta(seconds=age_seconds))


def reused_pid_lock() -> LockInfo:
    """A lock naming this process's pid, taken an hour before this process started: the pid was reused."""
    started = process_start_time(os.getpid())
    assert started is not None
    when = datetime.fromtimestamp(started - 3600, tz=UTC)
    return LockInfo(key="k.json", pid=os.getpid(), hostname=HOST, timestamp=when)


@pytest.mark.parametrize(
    ("make", "stale"),
    [
        (lambda: lock(os.getpid()), False),
        (lambda: lock(dead_pid()), True),
        (lambda: lock(os.getpid(), age_seconds=-1), False),
        (reused_pid_lock, True),
        (lambda: lock(12345, host=OTHER_HOST), False),
        (lambda: lock(os.getpid(), host=OTHER_HOST, age_seconds=100_000), False),
        (lambda: lock(dead_pid(), host=OTHER_HOST, age_seconds=100_000), False),
        (lambda: LockInfo(key="k.json", pid=None, hostname=None, timestamp=None), False),
        (lambda: LockInfo(key="k.json", pid=None, hostname=HOST, timestamp=datetime(2000, 1, 1, tzinfo=UTC)), False),
    ],
    ids=[
        "owner alive on this host",
        "owner gone on this host",
        "owner alive on this host, lock a moment younger than its start",
        "pid reused by a process started after the lock",
        "young, on another host",
        "a day old, on another host whose owner is alive",
        "a day old, on another host (a local pid that is dead means nothing there)",
        "nothing known",
        "decades old without a pid",
    ],
)
def test_a_lock_is_stale_only_when_its_owner_provably_cannot_be_running(
    make: Callable[[], LockInfo], stale: bool
) -> None:
    assert is_stale(make()) is stale


def write_lock(root: Path, stack: str, pid: int, *, host: str = HOST, age_seconds: float = 0) -> Path:
    path = root / ".pulumi" / "locks" / "organization" / "prenv" / stack / "0001.json"
    path.parent.mkdir(parents=True)
    when = (datetime.now(UTC) - timedelta(seconds=age_seconds)).isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps({"pid": pid, "username": "ci", "hostname": host, "timestamp": when}))
    return path


def test_a_dead_owners_lock_is_removed_before_the_operation(tmp_path: Path) -> None:
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_lock(tmp_path, "pr-1", dead_pid())
    clear_stale_locks(backend, "pr-1", warn_after_seconds=900)
    assert backend.locks("pr-1") == []


def test_a_live_owners_lock_refuses_the_operation_as_temporary(tmp_path: Path) -> None:
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_lock(tmp_path, "pr-1", os.getpid())
    with pytest.raises(StackLocked) as e:
        clear_stale_locks(backend, "pr-1", warn_after_seconds=900)
    assert e.value.temporary
    assert len(backend.locks("pr-1")) == 1


def test_a_long_ci_run_on_another_host_keeps_its_lock_and_the_refusal_names_prenv_unlock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The case of the issue: a `pulumi up` in CI, alive on another host for longer than stale_lock_seconds."""
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_lock(tmp_path, "pr-1", 4242, host=OTHER_HOST, age_seconds=3600)
    with caplog.at_level("WARNING"), pytest.raises(StackLocked) as e:
        clear_stale_locks(backend, "pr-1", warn_after_seconds=900)
    assert e.value.temporary
    assert "prenv unlock" in str(e.value)
    assert [(x.pid, x.hostname, x.username) for x in backend.locks("pr-1")] == [(4242, OTHER_HOST, "ci")]
    assert any("prenv unlock" in r.getMessage() and OTHER_HOST in r.getMessage() for r in caplog.records)


def _config(tmp_path: Path, backend: str | None = None) -> Path:
    config = tmp_path / "prenv.yaml"
    config.write_text(f"state:\n  backend: '{backend or f'file://{tmp_path}'}'\n")
    return config


def test_unlock_shows_the_owner_and_keeps_the_lock_when_not_confirmed(tmp_path: Path) -> None:
    write_lock(tmp_path, "pr-3", 4242, host=OTHER_HOST, age_seconds=7200)
    result = CliRunner().invoke(app, ["unlock", "--pr", "3", "-c", str(_config(tmp_path))], input="n\n")
    assert result.exit_code == 1, result.output
    for shown in (OTHER_HOST, "4242", "ci", "2h", "another host"):
        assert shown in result.output
    assert len(DiyBackend(FileStore(tmp_path), "prenv").locks("pr-3")) == 1


@pytest.mark.parametrize(("args", "answer"), [([], "y\n"), (["--yes"], None)], ids=["confirmed", "--yes"])
def test_unlock_removes_the_lock_once_confirmed(tmp_path: Path, args: list[str], answer: str | None) -> None:
    path = write_lock(tmp_path, "pr-3", os.getpid())
    result = CliRunner().invoke(app, ["unlock", "--pr", "3", *args, "-c", str(_config(tmp_path))], input=answer)
    assert result.exit_code == 0, result.output
    assert "alive" in result.output
    assert not path.exists()
    assert not path.with_name(path.name + ".attrs").exists()
    assert DiyBackend(FileStore(tmp_path), "prenv").locks("pr-3") == []


def test_unlock_of_an_unlocked_stack_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["unlock", "--pr", "3", "--yes", "-c", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "pr-3 is not locked" in result.output


@pytest.mark.parametrize(
    ("args", "backend", "named"),
    [
        (["--pr", "0"], None, "--pr"),
        (["--pr", "3"], "https://api.pulumi.com", "state.backend"),
    ],
    ids=["not a PR number", "Pulumi Cloud"],
)
def test_unlock_refuses_what_it_cannot_unlock(tmp_path: Path, args: list[str], backend: str | None, named: str) -> None:
    result = CliRunner().invoke(app, ["unlock", *args, "--yes", "-c", str(_config(tmp_path, backend))])
    assert result.exit_code == 2
    assert named in result.output


def test_owner_of_a_lock_on_this_host_reads_the_kernel() -> None:
    assert owner_of(lock(os.getpid())) == Owner.ALIVE
    assert owner_of(lock(dead_pid())) == Owner.GONE
    assert owner_of(lock(os.getpid(), host=OTHER_HOST)) == Owner.ELSEWHERE
