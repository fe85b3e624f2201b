"""A failed destroy judged like a failed up, and shown as a failed destroy by `prenv list --json`.

The gateway test replaces only the pulumi steps (selecting the stack, running ``pulumi destroy``) with stand-ins
that fail the way pulumi does; the list test reads a DIY backend written in pulumi's layout. Neither runs pulumi.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from typer.testing import CliRunner

from prenv.cli import app
from prenv.errors import DatabaseError, StackOperationError, encode
from prenv.gateway.backend import DiyBackend, FileStore
from prenv.gateway.diy import DiyGateway
from prenv.gateway.workspace import OutputLog
from prenv.toolchain import cache_dir

ROOT = Path(__file__).resolve().parents[2]


def provider_failure(err: DatabaseError) -> auto.CommandError:
    stdout = f"Destroying (pr-7):\nDiagnostics:\n  pulumi-python:dynamic:Resource (db):\n    error: {encode(err)}\n"
    return auto.CommandError(CommandResult(stdout=stdout, stderr="error: update failed\n", code=255))


class FailingDestroy(DiyGateway):
    """The DIY gateway with pulumi's select and destroy replaced: destroy fails with ``error``."""

    def __init__(self, state: Path, error: auto.CommandError) -> None:
        super().__init__(ROOT, f"file://{state}", {}, store=FileStore(state), pulumi_root=cache_dir())
        self.error = error
        self.removed: list[str] = []

    def _select(self, name: str, *, create: bool, exists: bool | None = None) -> Any:
        remove = self.removed.append
        return SimpleNamespace(name=name, workspace=SimpleNamespace(remove_stack=remove))

    def _destroy(self, stack: Any, log: OutputLog) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (DatabaseError("database pr_7 is being accessed by other users"), False),
        (DatabaseError("PostgreSQL unreachable", temporary=True, delay=4), True),
    ],
    ids=["permanent", "temporary"],
)
def test_a_failed_destroy_carries_the_judgement_of_its_cause_and_keeps_the_stack(
    tmp_path: Path, error: DatabaseError, temporary: bool
) -> None:
    gw = FailingDestroy(tmp_path, provider_failure(error))
    with pytest.raises(StackOperationError) as e:
        gw.destroy(7)
    assert e.value.temporary is temporary
    assert str(e.value).startswith("pr-7: destroy failed: ")
    assert "[prenv:" not in str(e.value)
    assert gw.removed == []  # never removed while its resources may still exist


def write_stack(root: Path, stack: str, kind: str, result: str) -> None:
    stacks = root / ".pulumi" / "stacks" / "prenv"
    stacks.mkdir(parents=True, exist_ok=True)
    outputs = {"sha": "a" * 40, "configHash": "h", "url": "https://web-7.preview.test"}
    resources = [{"type": "pulumi:pulumi:Stack", "outputs": outputs}]
    (stacks / f"{stack}.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": resources}}}))
    history = root / ".pulumi" / "history" / "prenv" / stack
    history.mkdir(parents=True, exist_ok=True)
    for i, (k, r) in enumerate([("update", "succeeded"), (kind, result)]):
        entry = {"kind": k, "result": r, "startTime": 1_796_000_000 + i}
        (history / f"{stack}-{1_796_000_000_000_000_000 + i}.history.json").write_text(json.dumps(entry))


def test_the_backend_reports_the_kind_of_the_last_run(tmp_path: Path) -> None:
    write_stack(tmp_path, "pr-7", "destroy", "failed")
    state = DiyBackend(FileStore(tmp_path), "prenv").state("pr-7")
    assert state is not None
    assert (state.result, state.last_kind) == ("failed", "destroy")


@pytest.mark.parametrize(
    ("kind", "result", "error"),
    [
        ("destroy", "failed", "last destroy failed"),
        ("update", "failed", "last update failed"),
        ("update", "succeeded", None),
    ],
    ids=["destroy failed", "update failed", "ready"],
)
def test_prenv_list_json_names_the_operation_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, result: str, error: str | None
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    state = tmp_path / "state"
    write_stack(state, "pr-7", kind, result)
    prs = tmp_path / "prs.yaml"
    prs.write_text("[]\n")
    config = tmp_path / "prenv.yaml"
    config.write_text(
        f"project_dir: {ROOT}\nstate:\n  backend: 'file://{state}'\nsource:\n  type: file\n  file:\n    path: {prs}\n"
    )
    done = CliRunner().invoke(app, ["list", "--json", "-c", str(config)])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.stdout)
    assert [(r["pr"], r["status"], r["error"]) for r in rows] == [(7, "ready" if error is None else "failed", error)]


def test_a_failed_destroy_leaves_its_reason_where_prenv_list_finds_it_and_a_success_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    write_stack(state, "pr-7", "destroy", "failed")
    gw = FailingDestroy(state, provider_failure(DatabaseError("database pr_7 is being accessed by other users")))
    with pytest.raises(StackOperationError):
        gw.destroy(7)
    listed = gw.backend.state("pr-7")
    assert listed is not None and listed.error is not None
    assert listed.error.startswith("pr-7: destroy failed: ") and "being accessed by other users" in listed.error

    gw.error = None  # type: ignore[assignment]
    gw._destroy = lambda stack, log: None  # type: ignore[method-assign]
    gw.destroy(7)
    assert gw.removed == ["pr-7"]
    assert gw.backend.failure("pr-7") is None


def test_a_recorded_reason_is_shown_only_while_the_last_run_is_failed(tmp_path: Path) -> None:
    backend = DiyBackend(FileStore(tmp_path), "prenv")
    write_stack(tmp_path, "pr-7", "update", "failed")
    backend.record_failure("pr-7", "update", "pr-7: up failed: pods not ready: web: CrashLoopBackOff, exit code 1")
    failed = backend.state("pr-7")
    assert failed is not None and failed.error == "pr-7: up failed: pods not ready: web: CrashLoopBackOff, exit code 1"
    write_stack(tmp_path, "pr-7", "update", "succeeded")  # a later run (by CI's pulumi up) succeeded
    recovered = backend.state("pr-7")
    assert recovered is not None and (recovered.result, recovered.error) == ("succeeded", None)
    assert not list((tmp_path / ".pulumi" / "stacks" / "prenv").glob("*.tmp"))


def test_a_metadata_sidecar_left_empty_by_a_killed_pulumi_is_removed_before_pulumi_reads_the_stack(
    tmp_path: Path,
) -> None:
    """gocloud's fileblob writes ``<key>.attrs`` by create-then-write: a SIGKILL in between leaves it empty, and
    pulumi then fails every read of the stack with ``failed to load checkpoint: EOF``."""
    write_stack(tmp_path, "pr-7", "update", "succeeded")
    write_stack(tmp_path, "pr-8", "update", "succeeded")
    stacks = tmp_path / ".pulumi" / "stacks" / "prenv"
    (stacks / "pr-7.json.attrs").write_text("")  # cut short
    (stacks / "pr-7.json.bak.attrs").write_text('{"user.content_type":"application/json"}\n')  # fine
    (stacks / "pr-8.json.attrs").write_text("")  # another stack's: not this operation's business
    history = tmp_path / ".pulumi" / "history" / "prenv" / "pr-7"
    (history / "pr-7-1.history.json.attrs").write_text('{"user.content_type"')
    backend = DiyBackend(FileStore(tmp_path), "prenv")

    removed = backend.remove_broken_sidecars("pr-7")

    assert sorted(removed) == [
        ".pulumi/history/prenv/pr-7/pr-7-1.history.json.attrs",
        ".pulumi/stacks/prenv/pr-7.json.attrs",
    ]
    assert (stacks / "pr-7.json.bak.attrs").exists() and (stacks / "pr-8.json.attrs").exists()
    assert backend.state("pr-7") is not None  # the checkpoint itself is untouched
    assert backend.remove_broken_sidecars("pr-7") == []
