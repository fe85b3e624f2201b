"""Process, port and polling helpers shared by everything that starts or adopts processes: the embedded cluster,
the local PostgreSQL, stale pulumi locks, the benchmarks and the tests. Linux only: it reads ``/proc``.

Generic on purpose: nothing here knows what the process is. Callers that expect a specific command line (the
cluster's pidfiles) check it themselves (prenv.cluster.processes).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp{,6}


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process. A zombie (exited, not yet reaped by a parent that never will in some
    containers) counts as dead: it holds no port, socket or data directory."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def wait_port_released(ports: Iterable[int], *, timeout: float) -> set[int]:
    """Wait until none of ``ports`` listens; return those still listening after ``timeout``."""
    ports = set(ports)
    deadline = time.monotonic() + timeout
    busy = listening_ports(ports)
    while busy and time.monotonic() < deadline:
        time.sleep(0.05)
        busy = listening_ports(ports)
    return busy


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (OSError,),
    error: Callable[[str], Exception] = TimeoutError,
) -> None:
    """Poll ``check`` until it is true. Exceptions of the ``tolerate`` types count as false (a server that is not
    listening yet); after ``timeout`` seconds ``error(message)`` is raised, naming ``what`` and the last error."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            if check():
                return
        except tolerate as e:
            last = f" (last error: {type(e).__name__} {getattr(e, 'status', '')})".replace(" )", ")")
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}{last}")
        time.sleep(interval)
