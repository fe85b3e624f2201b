"""How the stack gateway finds a branch environment's stack by its number: a new branch gets ``br-<slug>-<digits>``,
a branch whose stack was made before slugs (``pr-9xxxxxxxx``) keeps it for updates and is destroyed under it, and
only the slug of the stack's own name is written to its config.

The DIY gateway reads a ``file://`` backend written in pulumi's layout; only the pulumi steps (select, destroy) are
replaced with stand-ins that record what they were asked. ``prenv list`` and ``prenv unlock`` read the same backend.
No pulumi process runs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from typer.testing import CliRunner

from prenv import cli, naming
from prenv.cli import app
from prenv.errors import StackOperationError
from prenv.gateway.backend import FileStore
from prenv.gateway.cloud import CloudGateway
from prenv.gateway.diy import DiyGateway
from prenv.gateway.workspace import OutputLog
from prenv.model import DesiredEnvironment, PullRequest
from prenv.toolchain import cache_dir
from tests.unit.test_gateway_destroy import write_stack
from tests.unit.test_gateway_locks import write_lock

ROOT = Path(__file__).resolve().parents[2]
BRANCH = "Release/1.2"
N = naming.branch_number(BRANCH)
DIGITS = naming.branch_digits(N)


class RecordingGateway(DiyGateway):
    """The DIY gateway with pulumi's select and destroy replaced by stand-ins that record the stack names."""

    def __init__(self, state: Path) -> None:
        super().__init__(ROOT, f"file://{state}", {}, store=FileStore(state), pulumi_root=cache_dir())
        self.destroyed: list[str] = []
        self.removed: list[str] = []

    def _select(self, name: str, *, create: bool, exists: bool | None = None) -> Any:
        return SimpleNamespace(name=name, workspace=SimpleNamespace(remove_stack=self.removed.append))

    def _destroy(self, stack: Any, log: OutputLog) -> None:
        self.destroyed.append(stack.name)


class FakeStack:
    def __init__(self, name: str) -> None:
        self.name = name
        self.written: dict[str, str] = {}

    def get_all_config(self) -> dict[str, Any]:
        return {}

    def set_all_config(self, config: dict[str, auto.ConfigValue]) -> None:
        self.written = {k: v.value for k, v in config.items()}


def checkpoint(root: Path, stack: str) -> None:
    stacks = root / ".pulumi" / "stacks" / "prenv"
    stacks.mkdir(parents=True, exist_ok=True)
    (stacks / f"{stack}.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": []}}}))


def branch_env() -> DesiredEnvironment:
    pr = PullRequest(N, "a" * 40, BRANCH, BRANCH, "", "", slug=naming.branch_slug(BRANCH))
    return DesiredEnvironment(pr=pr, config_hash="h")


def test_a_new_branch_environment_gets_a_readable_stack(tmp_path: Path) -> None:
    gw = RecordingGateway(tmp_path)
    checkpoint(tmp_path, "pr-7")

    assert gw._name_for(N, "release-1-2") == f"br-release-1-2-{DIGITS}"
    assert gw._name_for(7, None) == "pr-7"


def test_a_branch_stack_made_before_slugs_keeps_its_name_for_updates(tmp_path: Path) -> None:
    gw = RecordingGateway(tmp_path)
    checkpoint(tmp_path, f"pr-{N}")

    assert gw._name_for(N, "release-1-2") == f"pr-{N}"


def test_branch_stacks_of_either_form_are_listed_under_their_number(tmp_path: Path) -> None:
    gw = RecordingGateway(tmp_path)
    for stack in ("pr-7", f"pr-{N}", "br-main-00000042", "shared"):
        checkpoint(tmp_path, stack)

    assert {s.stack: s.pr for s in gw.list_stacks()} == {"pr-7": 7, f"pr-{N}": N, "br-main-00000042": 900_000_042}


def test_a_branch_environment_is_destroyed_by_number_whatever_its_stack_is_called(tmp_path: Path) -> None:
    gw = RecordingGateway(tmp_path)
    checkpoint(tmp_path, f"br-release-1-2-{DIGITS}")
    checkpoint(tmp_path, "br-main-00000042")
    checkpoint(tmp_path, "pr-900000043")  # made before slugs

    gw.destroy(N)
    gw.destroy(900_000_043)
    gw.destroy(900_000_044)  # no stack: nothing to do

    assert gw.destroyed == gw.removed == [f"br-release-1-2-{DIGITS}", "pr-900000043"]


def test_only_the_slug_of_the_stacks_own_name_is_written_to_its_config(tmp_path: Path) -> None:
    gw = RecordingGateway(tmp_path)
    gw._ws_lock = threading.Lock()
    readable, legacy = FakeStack(f"br-release-1-2-{DIGITS}"), FakeStack(f"pr-{N}")

    gw._write_config(readable, branch_env(), new=True)  # type: ignore[arg-type]
    gw._write_config(legacy, branch_env(), new=True)  # type: ignore[arg-type]

    assert readable.written["prenv:slug"] == "release-1-2"
    assert readable.written["prenv:branch"] == "Release-1.2"
    assert "prenv:slug" not in legacy.written  # its program names things the old way, from its pr- name


def cli_config(tmp_path: Path, state: Path) -> Path:
    prs = tmp_path / "prs.yaml"
    prs.write_text("[]\n")
    config = tmp_path / "prenv.yaml"
    config.write_text(
        f"project_dir: {ROOT}\nstate:\n  backend: 'file://{state}'\nsource:\n  type: file\n  file:\n    path: {prs}\n"
    )
    return config


def test_prenv_list_shows_a_branch_environment_by_its_readable_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    state = tmp_path / "state"
    write_stack(state, f"br-release-1-2-{DIGITS}", "update", "succeeded")
    write_stack(state, "pr-7", "update", "succeeded")
    config = cli_config(tmp_path, state)

    as_json = CliRunner().invoke(app, ["list", "--json", "-c", str(config)])
    # prenv's Console fixes its width when it is made, from COLUMNS at import time if set: widen this one alone.
    monkeypatch.setattr(cli.out, "_width", 200)
    table = CliRunner().invoke(app, ["list", "-c", str(config)])

    assert as_json.exit_code == 0 and table.exit_code == 0, as_json.output + table.output
    assert [(r["pr"], r["stack"]) for r in json.loads(as_json.stdout)] == [(7, "pr-7"), (N, f"br-release-1-2-{DIGITS}")]
    assert f"br-release-1-2-{DIGITS}" in table.stdout and str(N) not in table.stdout


def test_prenv_unlock_finds_a_branch_environments_stack_by_its_number(tmp_path: Path) -> None:
    stack = f"br-release-1-2-{DIGITS}"
    checkpoint(tmp_path, stack)
    lock = write_lock(tmp_path, stack, 4242, host="ci-runner-7", age_seconds=7200)
    config = tmp_path / "prenv.yaml"
    config.write_text(f"state:\n  backend: 'file://{tmp_path}'\n")

    result = CliRunner().invoke(app, ["unlock", "--pr", str(N), "--yes", "-c", str(config)])

    assert result.exit_code == 0, result.output
    assert f"unlocked {stack}" in " ".join(result.output.split())
    assert not lock.exists()


def test_a_stack_listing_that_fails_on_pulumi_cloud_fails_a_branch_destroy_as_temporary() -> None:
    class Unreachable:
        def list_stacks(self) -> list[Any]:
            raise auto.CommandError(CommandResult(stdout="", stderr="error: dial tcp: i/o timeout\n", code=255))

    gw = object.__new__(CloudGateway)
    gw._workspace = Unreachable  # type: ignore[method-assign,assignment]

    with pytest.raises(StackOperationError) as caught:
        gw.destroy(N)

    assert caught.value.temporary
    assert "stack ls failed" in str(caught.value)
