"""Just enough process and port handling to prove that a cluster is up, and that ``down`` left nothing behind.

kwokctl starts each component detached (``setsid``) and records its pid in a pidfile; we start the ingress
status publisher the same way. A pid alone is not proof of anything (pids are reused), so every check also
matches the process's command line against what we expect. Linux only: it reads ``/proc``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp{,6}


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


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of ``pid`` in bytes (0 if it is gone); ``field="VmHWM"`` for its peak so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def listening_ports(candidates: Iterable[int]) -> set[int]:
    """Which of ``candidates`` have a TCP socket in LISTEN state on this host (any address, v4 or v6)."""
    wanted = set(candidates)
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if port in wanted:
                    found.add(port)
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free right now on 127.0.0.1.

    The kernel picks them at random from the ephemeral range. kwokctl's own choice (counting down from 32767)
    hands the same ports to two clusters created at the same moment, which is what pytest-xdist does.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def spawn_detached(argv: Sequence[str], *, log: Path, pidfile: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session, not as our child, with output appended to ``log``; record its pid.

    It must outlive ``prenv cluster up``, and it must not be our child either: a child that outlives its
    ``Popen`` object is reported as a leak, and its exit would leave a zombie in our process table. A shell
    puts it in the background and exits at once; init inherits it, exactly like kwokctl's components.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    script = 'setsid "$@" </dev/null >>"$0" 2>&1 & echo $!'
    out = subprocess.run(
        ["sh", "-c", script, str(log), *argv], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    )
    pid = int(out.stdout.strip())
    pidfile.write_text(f"{pid}\n")
    return pid


def wait_port_released(ports: Iterable[int], *, timeout: float) -> set[int]:
    """Wait until none of ``ports`` listens; return those still listening after ``timeout``."""
    ports = set(ports)
    deadline = time.monotonic() + timeout
    busy = listening_ports(ports)
    while busy and time.monotonic() < deadline:
        time.sleep(0.05)
        busy = listening_ports(ports)
    return busy


def port_in_use_error(text: str) -> bool:
    """Whether a component log says it lost a race for its port."""
    return "address already in use" in text.lower() or os.strerror(errno.EADDRINUSE).lower() in text.lower()
