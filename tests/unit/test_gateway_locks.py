"""Stale locks of a crashed run: removed when their owner is gone or they are too old, respected otherwise."""

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

from prenv.errors import StackLocked
from prenv.gateway.backend import DiyBackend, FileStore, LockInfo
from prenv.gateway.locks import clear_stale_locks, is_stale

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOST = socket.gethostname()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock(pid: int | None, host: str | None = HOST, age_seconds: float = 10) -> LockInfo:
    return LockInfo(key="k.json", pid=pid, hostname=host, timestamp=NOW - timedelta(seconds=age_seconds))


@pytest.mark.parametrize(
    ("make", "stale"),
    [
        (lambda: lock(os.getpid()), False),
        (lambda: lock(dead_pid()), True),
        (lambda: lock(os.getpid(), age_seconds=1000), True),
        (lambda: lock(12345, host="another-host"), False),
        (lambda: lock(12345, host="another-host", age_seconds=1000), True),
        (lambda: LockInfo(key="k.json", pid=None, hostname=None, timestamp=None), False),
    ],
    ids=[
        "owner alive on this host",
        "owner gone on this host",
        "older than the maximum age",
        "young, on another host",
        "old, on another host",
        "nothing known",
    ],
)
def test_a_lock_is_stale_only_when_its_owner_cannot_be_running(make: Callable[[], LockInfo], stale: bool) -> None:
    assert is_stale(make(), max_age_seconds=900, now=NOW) is stale


def write_lock(root: Path, stack: str, pid: int) -> None:
    path = root / ".pulumi" / "locks" / "organization" / "prenv" / stack / "0001.json"
    path.parent.mkdir(parents=True)
    when = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps({"pid": pid, "hostname": HOST, "timestamp": when}))


def test_a_dead_owners_lock_is_removed_before_the_operation(tmp_path: Path) -> None:
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_lock(tmp_path, "pr-1", dead_pid())
    clear_stale_locks(backend, "pr-1", max_age_seconds=900)
    assert backend.locks("pr-1") == []


def test_a_live_owners_lock_refuses_the_operation_as_temporary(tmp_path: Path) -> None:
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_lock(tmp_path, "pr-1", os.getpid())
    with pytest.raises(StackLocked) as e:
        clear_stale_locks(backend, "pr-1", max_age_seconds=900)
    assert e.value.temporary
    assert len(backend.locks("pr-1")) == 1
