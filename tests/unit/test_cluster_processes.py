"""Process and port checks that ``status`` and ``down`` rely on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prenv import procs
from prenv.cluster import processes


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[int]:
    """A detached process whose command line carries a recognisable marker, for as long as it runs.

    (Not ``sh -c "sleep 60 # marker"``: the shell execs its last command, and ``sleep 60`` has lost the marker.)
    """
    pid = processes.spawn_detached(
        [sys.executable, "-c", "import time; time.sleep(60)", "marker-sleeper"],
        log=tmp_path / "log",
        pidfile=tmp_path / "pid",
        cwd=tmp_path,
    )
    yield pid
    processes.terminate([(pid, "marker-sleeper")], grace=1)


def test_a_detached_process_is_recorded_and_alive_but_not_our_child(sleeper: int, tmp_path: Path) -> None:
    assert processes.read_pidfile(tmp_path / "pid") == sleeper
    assert processes.is_alive(sleeper, "marker-sleeper")
    with pytest.raises(ChildProcessError):
        os.waitpid(sleeper, os.WNOHANG)


def test_a_pid_running_something_else_does_not_count_as_alive(sleeper: int) -> None:
    assert not processes.is_alive(sleeper, "kube-apiserver")


def test_a_zombie_counts_as_dead() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 0 # marker-zombie"])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not processes.is_alive(child.pid, "sh")
    child.wait()


def test_terminate_stops_a_process_and_reports_none_needed_killing(sleeper: int) -> None:
    assert processes.terminate([(sleeper, "marker-sleeper")], grace=5) == []
    assert not processes.is_alive(sleeper, "marker-sleeper")


def ignores_sigterm(pid: int) -> bool:
    """Whether ``pid`` has installed its ``trap '' TERM`` yet (SigIgn in /proc/<pid>/status, a hex signal mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_terminate_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    pid = processes.spawn_detached(
        ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done # marker-stubborn"],
        log=tmp_path / "log",
        pidfile=tmp_path / "pid",
        cwd=tmp_path,
    )
    procs.wait_until("the shell to ignore SIGTERM", lambda: ignores_sigterm(pid), timeout=5, interval=0.01)
    assert processes.terminate([(pid, "marker-stubborn")], grace=0.5) == [pid]
    deadline = time.monotonic() + 5
    while processes.is_alive(pid, "marker-stubborn"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_missing_or_garbled_pidfile_reads_as_none(tmp_path: Path) -> None:
    assert processes.read_pidfile(tmp_path / "absent") is None
    (tmp_path / "bad").write_text("not a pid")
    assert processes.read_pidfile(tmp_path / "bad") is None


def test_listening_ports_sees_a_listener_and_not_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert procs.listening_ports([port, 1]) == {port}
    assert procs.listening_ports([port]) == set()


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = procs.free_ports(6)
    assert len(set(ports)) == 6
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_rss_of_a_live_process_is_positive_and_of_a_dead_one_zero() -> None:
    assert procs.rss_bytes(os.getpid()) > 0
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert procs.rss_bytes(int(child.stdout)) == 0


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("listen tcp 127.0.0.1:2379: bind: address already in use", True),
        ("OSError: [Errno 98] Address already in use", True),
        ("etcd started", False),
    ],
    ids=["go", "python", "unrelated"],
)
def test_port_races_are_recognised_in_component_logs(log: str, expected: bool) -> None:
    assert processes.port_in_use_error(log) is expected
