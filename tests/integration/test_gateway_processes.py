"""The pulumi processes an operation costs: each one is start-up time between a webhook and a ready environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from prenv.gateway.diy import DiyGateway
from prenv.model import DesiredEnvironment, PullRequest
from tests.fixtures.preview import unique_pr
from testsupport.spy import pulumi_commands

pytestmark = pytest.mark.integration


def desired(n: int, sha: str) -> DesiredEnvironment:
    pr = PullRequest(number=n, sha=sha * 40, branch="b", base="main", author="a", title="t")
    return DesiredEnvironment(pr=pr, config_hash="h")


def test_a_new_pr_costs_three_pulumi_processes_a_push_three_and_a_teardown_three(
    gateway: DiyGateway, project_dir: Path
) -> None:
    n = unique_pr()
    with pulumi_commands() as created:
        gateway.up(desired(n, "a"))
    assert [c[0] for c in created] == ["stack", "config", "up"]
    assert created[0][1] == "init"
    created_at = yaml.safe_load((project_dir / f"Pulumi.pr-{n}.yaml").read_text())["config"]["prenv:createdAt"]

    with pulumi_commands() as pushed:
        state = gateway.up(desired(n, "b"))
    assert [c[0] for c in pushed] == ["stack", "config", "up"]
    assert pushed[0][1] == "select"
    assert state.sha == "b" * 40
    config = yaml.safe_load((project_dir / f"Pulumi.pr-{n}.yaml").read_text())["config"]
    assert config["prenv:createdAt"] == created_at, "a push keeps the creation time"
    with pulumi_commands() as destroyed:
        gateway.destroy(n)
    assert [c[0] for c in destroyed] == ["stack", "destroy", "stack"]
    assert [destroyed[0][1], destroyed[2][1]] == ["select", "rm"]
    assert all(s.pr != n for s in gateway.list_stacks())


def test_a_stack_created_meanwhile_by_someone_else_is_used_not_refused(
    gateway: DiyGateway, project_dir: Path, backend_url: str, preview_env: dict[str, str]
) -> None:
    n = unique_pr()
    from prenv.toolchain import tool_path

    env = {**preview_env, "PULUMI_BACKEND_URL": backend_url}
    subprocess.run([str(tool_path("pulumi")), "stack", "init", f"pr-{n}"], cwd=project_dir, env=env, check=True)
    real = gateway.backend.stack_names
    gateway.backend.stack_names = lambda: [s for s in real() if s != f"pr-{n}"]  # type: ignore[method-assign]
    try:
        state = gateway.up(desired(n, "c"))
    finally:
        gateway.backend.stack_names = real  # type: ignore[method-assign]
    assert state.sha == "c" * 40
    gateway.destroy(n)
