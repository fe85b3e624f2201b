"""No pulumi process outlives its operation: each runs in a session the gateway ends, and a killed driver's session
is ended by the next driver's start-up (prenv.gateway.sessions).

A small project on a file backend, no cluster: one dynamic resource whose create writes a marker and then sleeps, so
that an operation can be caught with its whole tree running (engine, language host, the ``/bin/sh`` provider shim
and its ``python -m pulumi.dynamic`` child).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prenv import driver, settings
from prenv.gateway.sessions import SessionCommand, end_orphaned_sessions
from prenv.procs import process_alive, session_members, wait_until
from prenv.toolchain import cache_dir

pytestmark = pytest.mark.integration

PROGRAM = """
import os
import time

from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Slow(ResourceProvider):
    def create(self, props):
        with open(props["marker"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(float(props["seconds"]))
        return CreateResult("slow", {})


class SlowResource(Resource):
    def __init__(self, name, marker, seconds):
        super().__init__(Slow(), name, {"marker": marker, "seconds": seconds})


SlowResource("slow", os.environ["SESSION_TEST_MARKER"], os.environ["SESSION_TEST_SECONDS"])
"""

DRIVER = """
import sys
from pathlib import Path

from prenv.gateway.sessions import SessionCommand
from prenv.toolchain import cache_dir

cmd = SessionCommand(root=str(cache_dir()), record_dir=Path(sys.argv[1]))
cmd.run(["up", "--yes", "--skip-preview", "--stack", "dev", "--color", "never"], sys.argv[2], {})
"""


@pytest.fixture
def project(tmp_path: Path, pulumi_env: dict[str, str]) -> Iterator[tuple[Path, dict[str, str]]]:
    """The project, its stack ``dev`` initialised, and the environment its pulumi runs get."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "Pulumi.yaml").write_text("name: sessions\nruntime: python\n")
    (work / "__main__.py").write_text(PROGRAM)
    backend = tmp_path / "backend"
    backend.mkdir()
    env = {
        **pulumi_env,
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "SESSION_TEST_MARKER": str(tmp_path / "created"),
        "SESSION_TEST_SECONDS": "0",
    }
    SessionCommand(root=str(cache_dir())).run(["stack", "init", "dev"], str(work), env)
    yield work, env


def cmdlines(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return out


def test_an_operation_s_whole_process_tree_is_its_session_and_nothing_is_left_when_it_ends(
    tmp_path: Path, project: tuple[Path, dict[str, str]]
) -> None:
    work, env = project
    records = tmp_path / "sessions"
    cmd = SessionCommand(root=str(cache_dir()), record_dir=records)
    seen: dict[int, list[str]] = {}

    def watch(_line: str) -> None:
        for record in records.glob("*.json"):
            sid = json.loads(record.read_text())["sid"]
            seen.setdefault(sid, [])
            seen[sid] = sorted(set(seen[sid]) | set(cmdlines(session_members(sid))))

    cmd.run(["up", "--yes", "--skip-preview", "--stack", "dev", "--color", "never"], str(work), env, on_output=watch)
    assert len(seen) == 1, "one operation, one session"
    ((sid, members),) = seen.items()
    assert any("pulumi-language-python" in m for m in members), members
    assert session_members(sid) == []
    assert list(records.glob("*.json")) == []


def start_driver(tmp_path: Path, work: Path, env: dict[str, str], records: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A driver process running a 10-minute ``pulumi up``; returns it and its session once the create runs."""
    marker = Path(env["SESSION_TEST_MARKER"])
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(records), str(work)],
        env={**os.environ, **env, "SESSION_TEST_SECONDS": "600"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until("the dynamic provider's create to start", marker.exists, timeout=120)
    (record,) = list(records.glob("*.json"))
    return proc, int(json.loads(record.read_text())["sid"])


def test_a_killed_driver_leaves_its_operation_running_and_the_next_driver_s_start_up_ends_all_of_it(
    tmp_path: Path, project: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, env = project
    monkeypatch.setenv("PRENV_STATE_DIR", str(tmp_path / "state-dir"))
    records = driver.session_dir()
    proc, sid = start_driver(tmp_path, work, env, records)
    running = session_members(sid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The positive control: the crash itself ends nothing (this is what piled up before).
    assert all(process_alive(p) for p in running)
    members = cmdlines(session_members(sid))
    assert any("pulumi.dynamic" in m for m in members), members
    assert any("pulumi-resource-pulumi-python" in m for m in members), members
    assert any("pulumi-language-python" in m for m in members), members

    config = tmp_path / "prenv.yaml"
    config.write_text(f"state:\n  backend: '{(tmp_path / 'other-backend').as_uri()}'\n")
    driver.build_gateway(settings.load(config))  # what every prenv command does first

    assert session_members(sid) == [], cmdlines(session_members(sid))
    assert not any(process_alive(p) for p in running)
    assert list(records.glob("*.json")) == []


def test_a_live_driver_s_session_is_never_ended_by_another(
    tmp_path: Path, project: tuple[Path, dict[str, str]]
) -> None:
    work, env = project
    records = tmp_path / "sessions"
    proc, sid = start_driver(tmp_path, work, env, records)
    try:
        running = session_members(sid)
        assert end_orphaned_sessions(records) == []
        assert all(process_alive(p) for p in running)
        assert len(list(records.glob("*.json"))) == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ended = end_orphaned_sessions(records)
    assert ended == [sid]
    assert session_members(sid) == []
