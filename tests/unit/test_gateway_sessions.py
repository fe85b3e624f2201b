"""Sessions of pulumi processes without pulumi: a stand-in CLI (a shell script named pulumi) that leaves children
behind, exits, fails or is abandoned, and session records of drivers alive and gone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from pulumi import automation as auto

from prenv.gateway.sessions import SessionCommand, end_orphaned_sessions
from prenv.procs import process_alive, process_start_time, session_members, wait_until

# The stand-in: answers `version`; otherwise starts a child in a process group of its own (as the engine starts a
# plugin) that would run for 10 minutes holding stdout, prints its pid, and exits with the code the test asks for.
SCRIPT = """#!/bin/sh
case " $* " in *" version "*) echo v{version}; exit 0;; esac
{python} -c "import subprocess; p = subprocess.Popen(['sleep', '600'], process_group=0); print('child', p.pid)"
echo "args $*"
sleep "${{HANG_SECONDS:-0.2}}"
exit "${{EXIT_CODE:-0}}"
"""


@pytest.fixture
def command(tmp_path: Path) -> SessionCommand:
    root = tmp_path / "pulumi"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "pulumi"
    exe.write_text(SCRIPT.format(version=version("pulumi"), python=sys.executable))
    exe.chmod(0o755)
    return SessionCommand(root=str(root), record_dir=tmp_path / "sessions", grace=2.0)


def child_of(lines: list[str]) -> int:
    return next(int(line.split()[1]) for line in lines if line.startswith("child "))


def test_a_command_s_leftover_child_is_ended_and_its_output_is_complete(command: SessionCommand) -> None:
    lines: list[str] = []
    result = command.run(["up", "--yes"], os.getcwd(), {}, on_output=lines.append)
    child = child_of(lines)
    assert not process_alive(child)
    assert "args --non-interactive up --yes" in result.stdout
    assert list((command.record_dir or Path()).glob("*.json")) == []


def test_a_failed_command_raises_the_automation_api_error_and_leaves_nothing(command: SessionCommand) -> None:
    lines: list[str] = []
    with pytest.raises(auto.CommandError) as e:
        command.run(["up"], os.getcwd(), {"EXIT_CODE": "3"}, on_output=lines.append)
    assert "code: 3" in str(e.value)
    assert not process_alive(child_of(lines))


class Abandoned(Exception):
    pass


def test_an_abandoned_command_is_ended_with_its_whole_session(command: SessionCommand) -> None:
    """The caller gives up while pulumi runs (Ctrl-C, a timeout): a signal handler raising stands for it."""
    seen: list[str] = []

    def give_up(_signum: int, _frame: object) -> None:
        raise Abandoned

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    started = time.monotonic()
    try:
        with pytest.raises(Abandoned):
            command.run(["up"], os.getcwd(), {"HANG_SECONDS": "300"}, on_output=seen.append)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    assert not process_alive(child_of(seen))
    assert list((command.record_dir or Path()).glob("*.json")) == []


def record(directory: Path, sid: int, driver_pid: int, started: float | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sid}.json"
    doc = {
        "sid": sid,
        "driver_pid": driver_pid,
        "driver_started": process_start_time(driver_pid),
        "started": started if started is not None else (process_start_time(sid) or time.time()),
    }
    path.write_text(json.dumps(doc))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def session(bin_dir: Path, name: str) -> subprocess.Popen[bytes]:
    """``sleep 600`` in a session of its own, under the command name ``name`` (``bin_dir`` must not name pulumi)."""
    exe = bin_dir / name
    exe.symlink_to(shutil.which("sleep") or "/bin/sleep")
    proc = subprocess.Popen([str(exe), "600"], start_new_session=True)
    wait_until("the session to start", lambda: bool(session_members(proc.pid)), timeout=10)
    return proc


@pytest.fixture
def sessions() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Sessions a test starts; whatever is left is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_gone_driver_s_pulumi_session_is_ended_and_its_record_removed(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sessions: list[subprocess.Popen[bytes]]
) -> None:
    proc = session(tmp_path_factory.mktemp("bin"), "pulumi-resource-fake")
    sessions.append(proc)
    path = record(tmp_path, proc.pid, dead_pid())
    assert end_orphaned_sessions(tmp_path, grace=2.0) == [proc.pid]
    assert proc.wait(timeout=10) is not None
    assert not path.exists()


@pytest.mark.parametrize("why", ["driver alive", "not pulumi", "started before the record"])
def test_a_session_is_left_alone_unless_it_is_a_gone_driver_s_pulumi(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sessions: list[subprocess.Popen[bytes]], why: str
) -> None:
    proc = session(tmp_path_factory.mktemp("bin"), "sleep-only" if why == "not pulumi" else "pulumi-resource-fake")
    sessions.append(proc)
    driver = os.getpid() if why == "driver alive" else dead_pid()
    started = time.time() + 60 if why == "started before the record" else None
    path = record(tmp_path, proc.pid, driver, started=started)
    assert end_orphaned_sessions(tmp_path, grace=2.0) == []
    assert proc.poll() is None
    assert path.exists() is (why == "driver alive")


def test_an_unreadable_record_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "1.json").write_text("{not json")
    assert end_orphaned_sessions(tmp_path) == []
    assert end_orphaned_sessions(tmp_path / "missing") == []


def test_an_unwritable_record_dir_warns_once_and_the_commands_still_run(
    tmp_path: Path, command: SessionCommand, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    command.record_dir = blocked / "sessions"
    with caplog.at_level("DEBUG", logger="prenv.gateway.sessions"):
        for _ in range(2):
            lines: list[str] = []
            command.run(["up"], os.getcwd(), {}, on_output=lines.append)
            assert not process_alive(child_of(lines))
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "cannot record pulumi sessions" in warnings[0].getMessage()
