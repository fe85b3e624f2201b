"""The session-end check (tests/fixtures/processes.py) against real pytest runs: a leaked process of ours fails the
run and is ended, with and without xdist; a run that leaks nothing passes; another session's process is not ours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prenv.procs import process_alive

ROOT = Path(__file__).resolve().parents[2]

LEAKY = """
import subprocess
import sys


def test_leaks_a_process_started_from_the_checkout():
    # A double fork would look the same: the child keeps the session's environment variable.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{root}/leak"],
                            start_new_session=True)
    with open("{pidfile}", "w") as f:
        f.write(str(proc.pid))
"""

CLEAN = """
import subprocess
import sys


def test_starts_and_stops_a_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{root}/clean"])
    proc.terminate()
    proc.wait()
"""


def run_pytest(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "t" / "test_inner.py"
    test.parent.mkdir(exist_ok=True)
    test.write_text(body.format(root=ROOT, pidfile=tmp_path / "leaked.pid"))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.fixtures.processes",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(test.parent),
            f"--basetemp={tmp_path / 'base'}",
            *args,
            str(test),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PRENV_TEST_LEFTOVER_GRACE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_leaked_process_fails_the_run_and_is_ended(tmp_path: Path, xdist: list[str]) -> None:
    done = run_pytest(tmp_path, LEAKY, *xdist)
    pid = int((tmp_path / "leaked.pid").read_text())
    assert not process_alive(pid), "the check ends what it reports"
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:]
    assert "1 passed" in done.stdout
    assert f"pid {pid}:" in done.stdout
    assert f"{ROOT}/leak" in done.stdout


def test_a_run_that_stops_what_it_starts_passes(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, CLEAN)
    assert done.returncode == pytest.ExitCode.OK, done.stdout[-3000:]
    assert "leftover processes" not in done.stdout


def test_a_process_of_another_session_is_not_counted(tmp_path: Path) -> None:
    """This session's own process (another session's, to the inner run) runs throughout the inner run."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", f"{ROOT}/other-session"])
    try:
        done = run_pytest(tmp_path, CLEAN)
        assert done.returncode == pytest.ExitCode.OK, done.stdout[-3000:]
        assert process_alive(other.pid)
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait()
