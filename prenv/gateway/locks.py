"""Stack locks in a DIY backend: which ones a crashed run left behind (and may be removed), and which are someone's.

Pulumi takes a lock file per operation and deletes it when the operation ends; a killed ``pulumi up`` leaves it, and
every later operation on the stack then fails until someone removes it. A lock is stale, and removed before our next
operation, only when we can prove its owner is gone: it was taken on this host and its pid is dead, or that pid now
belongs to a process started after the lock was taken (the pid was reused).

Age alone proves nothing: a CI ``pulumi up`` on another host may run longer than any limit, and removing its lock
would let two updates write one checkpoint. So a lock held by another host, or by a live local process, is respected:
the operation is refused as ``StackLocked`` (temporary, retried with backoff). Past ``warn_after_seconds`` the refusal
says that an operator can look at it: ``prenv unlock --pr N`` shows the owner (host, pid, user, age) and removes the
lock after confirmation.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

from prenv.errors import StackLocked
from prenv.gateway.backend import DiyBackend, LockInfo
from prenv.procs import process_alive, process_start_time

__all__ = ["Owner", "age_seconds", "clear_stale_locks", "is_stale", "owner_of"]

logger = logging.getLogger(__name__)

_PID_REUSE_SLACK = 120.0
"""Seconds by which a live process may appear to have started after the lock it holds was taken. The lock's time is
pulumi's wall clock when it took the lock, the process's start is computed from today's wall clock, so a clock step
forward in between (NTP after a VM resumes) moves the start later: only a start well after the lock proves a reused
pid. The cost of the margin: a pid reused within two minutes of a crash keeps the lock until that process ends."""


class Owner:
    """What this host can tell about a lock's owner."""

    ALIVE = "alive on this host"
    GONE = "gone (not running on this host)"
    ELSEWHERE = "on another host: cannot tell from here"
    UNKNOWN = "unknown (the lock names no pid and host)"


def age_seconds(lock: LockInfo, now: datetime | None = None) -> float | None:
    """How long ago the lock was taken, or None when it carries no timestamp."""
    if lock.timestamp is None:
        return None
    return ((now or datetime.now(UTC)) - lock.timestamp).total_seconds()


def owner_of(lock: LockInfo, *, host: str | None = None) -> str:
    """One of the Owner texts for ``lock``: only a lock taken on this host can be judged by its pid.

    Args:
        lock: the lock as read from the backend.
        host: this machine's hostname (default: ``socket.gethostname()``).
    """
    if lock.pid is None or lock.hostname is None:
        return Owner.UNKNOWN
    if lock.hostname != (host or socket.gethostname()):
        return Owner.ELSEWHERE
    if not process_alive(lock.pid):
        return Owner.GONE
    started = process_start_time(lock.pid)
    if lock.timestamp is not None and started is not None and started > lock.timestamp.timestamp() + _PID_REUSE_SLACK:
        return Owner.GONE  # the pid belongs to a later process now: the lock's owner is gone
    return Owner.ALIVE


def is_stale(lock: LockInfo, *, host: str | None = None) -> bool:
    """Whether ``lock`` was provably left by an operation that is no longer running (see the module docstring).

    Args:
        lock: the lock as read from the backend.
        host: this machine's hostname (default: ``socket.gethostname()``).
    """
    return owner_of(lock, host=host) == Owner.GONE


def clear_stale_locks(backend: DiyBackend, stack: str, *, warn_after_seconds: float) -> None:
    """Remove the stack's stale locks; raise StackLocked (temporary) if anyone else may still hold it.

    Args:
        backend: the DIY backend.
        stack: the stack's name.
        warn_after_seconds: a lock held longer than this is logged as a warning and its refusal names
            ``prenv unlock``; it is never removed for its age.
    """
    for lock in backend.locks(stack):
        if is_stale(lock):
            backend.remove_lock(lock)
            continue
        age = age_seconds(lock)
        if age is not None and age > warn_after_seconds:
            logger.warning(
                "%s: locked for %.0fs by pid %s on %s; if that run is gone, an operator can remove the lock with "
                "`prenv unlock`",
                stack,
                age,
                lock.pid,
                lock.hostname,
            )
            raise StackLocked(stack, f"locked for {age:.0f}s by another operation; `prenv unlock` shows its owner")
        raise StackLocked(stack, "another operation holds the stack (its owner may be running)")
