"""A pulumi run killed with SIGKILL mid-update leaves a lock and pending operations; the gateway recovers them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from prenv.gateway.diy import DiyGateway
from prenv.gateway.sessions import end_session
from prenv.model import DesiredEnvironment, PullRequest
from prenv.procs import session_members
from prenv.toolchain import tool_path
from tests.fixtures.preview import unique_pr

pytestmark = pytest.mark.integration


def test_an_up_killed_midway_is_recovered_by_the_next_operation(
    gateway: DiyGateway, project_dir: Path, backend_url: str, preview_env: dict[str, str]
) -> None:
    n = unique_pr()
    stack = f"pr-{n}"
    env = {**preview_env, "PULUMI_BACKEND_URL": backend_url}
    pulumi = str(tool_path("pulumi"))
    run = {"cwd": project_dir, "env": env, "check": True, "capture_output": True}
    subprocess.run([pulumi, "stack", "init", stack], **run)  # type: ignore[call-overload]
    subprocess.run([pulumi, "config", "set", "prenv:sha", "1" * 40, "-s", stack], **run)  # type: ignore[call-overload]
    proc = subprocess.Popen(
        [pulumi, "up", "--yes", "--skip-preview", "-s", stack, "--color", "never"],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    # Kill it while its Deployments are being created: the namespace and its policies exist in the cluster, the
    # Deployment creates are pending in the checkpoint. (An up takes a few seconds now: no fixed sleep would do.)
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if "kubernetes:apps/v1:Deployment" in line and "creating" in line:
            break
    else:
        pytest.fail("the up ended before creating a Deployment:\n" + "".join(seen[-30:]))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The engine is dead; its plugins run in process groups of their own but are still in its session: end them
    # (SIGTERM reaches them only now, after the engine that could have cleaned up is gone).
    end_session(proc.pid)
    assert session_members(proc.pid) == []
    assert gateway.backend.locks(stack), "the killed run should have left its lock"

    pr = PullRequest(number=n, sha="1" * 40, branch="b", base="main", author="a", title="t")
    state = gateway.up(DesiredEnvironment(pr=pr, config_hash="h"))
    assert state.sha == "1" * 40
    assert gateway.backend.locks(stack) == []
    assert gateway.backend.pending_operations(stack) == 0
    gateway.destroy(n)
    assert all(s.pr != n for s in gateway.list_stacks())
