"""Just enough process and port handling to prove that a cluster is up, and that ``down`` left nothing behind.

kwokctl starts each component detached (``setsid``) and records its pid in a pidfile; we start Traefik the
same way. A pid alone is not proof of anything (pids are reused), so every check also
matches the process's command line against what we expect. Linux only: it reads ``/proc``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def read_pidfile(path: Path) -> int | None:
    """The pid recorded in ``path``, or None if there is no usable pidfile."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


_EXEC_RETRIES = 50  # x 10 ms


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid``; empty if it is gone or a zombie (a zombie has no cmdline)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` runs and its command line contains ``marker`` (guards against a reused pid).

    Zombies count as dead: a killed component whose parent (init) has not reaped it yet holds no port.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may itself contain spaces or parentheses).
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    args = cmdline(pid)
    for _ in range(_EXEC_RETRIES):
        if args:
            break
        # A live process reads an empty cmdline only in the middle of an execve (a component just spawned,
        # between ``setsid`` and its binary): look again once it has its new argv.
        time.sleep(0.01)
        args = cmdline(pid)
    return any(marker in arg for arg in args)


def terminate(pids: Iterable[tuple[int, str]], *, grace: float = 10.0) -> list[int]:
    """SIGTERM every ``(pid, marker)`` still alive, SIGKILL whatever is left after ``grace`` seconds.

    Returns the pids that had to be killed. Reaps them if they happen to be our children.
    """
    alive = [(pid, marker) for pid, marker in pids if is_alive(pid, marker)]
    for pid, _ in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        _reap(pid for pid, _ in alive)
        alive = [(pid, marker) for pid, marker in alive if is_alive(pid, marker)]
        if alive:
            time.sleep(0.05)
    for pid, _ in alive:
        logger.warning("pid %d ignored SIGTERM for %.0fs; killing it", pid, grace)
        _signal(pid, signal.SIGKILL)
    _reap(pid for pid, _ in alive)
    return [pid for pid, _ in alive]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def spawn_detached(
    argv: Sequence[str], *, log: Path, pidfile: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in its own session, not as our child, with output appended to ``log``; record its pid.

    It must outlive ``prenv cluster up``, and it must not be our child either: a child that outlives its
    ``Popen`` object is reported as a leak, and its exit would leave a zombie in our process table. A shell
    puts it in the background and exits at once; init inherits it, exactly like kwokctl's components.
    ``env`` replaces the environment (default: ours).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    script = 'setsid "$@" </dev/null >>"$0" 2>&1 & echo $!'
    out = subprocess.run(
        ["sh", "-c", script, str(log), *argv],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    pid = int(out.stdout.strip())
    pidfile.write_text(f"{pid}\n")
    return pid


def port_in_use_error(text: str) -> bool:
    """Whether a component log says it lost a race for its port."""
    return "address already in use" in text.lower() or os.strerror(errno.EADDRINUSE).lower() in text.lower()
