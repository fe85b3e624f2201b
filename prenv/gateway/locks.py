"""Stack locks a crashed run left behind in a DIY backend: when one may be removed, and removing it.

Pulumi takes a lock file per operation and deletes it when the operation ends; a killed ``pulumi up`` leaves it, and
every later operation on the stack then fails until someone removes it. A lock is stale, and removed, only when its
owner process is gone (same host: we can ask the kernel) or it is older than the configured age (another host, or a
pid that was reused). A live owner's lock is respected: the operation is refused as ``StackLocked`` (temporary).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from prenv.errors import StackLocked
from prenv.gateway.backend import DiyBackend, LockInfo
from prenv.procs import process_alive

__all__ = ["clear_stale_locks", "is_stale"]


def is_stale(lock: LockInfo, *, max_age_seconds: float, now: datetime | None = None, host: str | None = None) -> bool:
    """Whether ``lock`` was left by an operation that can no longer be running.

    Args:
        lock: the lock as read from the backend.
        max_age_seconds: older than this, a lock is stale whoever holds it.
        now: the current time (default: now, UTC).
        host: this machine's hostname (default: ``socket.gethostname()``); only a lock taken on this host can be
            judged by its pid.
    """
    if lock.timestamp is not None:
        age = ((now or datetime.now(UTC)) - lock.timestamp).total_seconds()
        if age > max_age_seconds:
            return True
    if lock.pid is not None and lock.hostname == (host or socket.gethostname()):
        return not process_alive(lock.pid)
    return False


def clear_stale_locks(backend: DiyBackend, stack: str, *, max_age_seconds: float) -> None:
    """Remove the stack's stale locks; raise StackLocked if a live operation holds it."""
    for lock in backend.locks(stack):
        if is_stale(lock, max_age_seconds=max_age_seconds):
            backend.remove_lock(lock)
        else:
            raise StackLocked(stack, "another operation holds the stack (its owner is alive)")
