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


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state is [0], ppid [1], pgrp [2], session [3],
    starttime [19]), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (to a clock tick), or None when it is gone. Tells a process
    from a later one that reused its pid."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    try:
        btime = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (``setsid``/``start_new_session``), whatever process group they moved
    to and whoever their parent is now; zombies left out."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return sorted(members)


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
