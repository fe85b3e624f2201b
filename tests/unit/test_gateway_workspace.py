"""What both gateways share, without a pulumi process: a stack's own config keys read from its file, PR values
written once per up with the creation stamp kept, and pulumi's output logged redacted."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from prenv.gateway.cloud import CloudGateway
from prenv.gateway.workspace import OutputLog, PulumiGateway
from prenv.model import DesiredEnvironment, PullRequest


class FakeStack:
    """The two calls of ``auto.Stack`` the config writer makes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.written: dict[str, str] = {}

    def get_all_config(self) -> dict[str, Any]:
        raise AssertionError("the config file is readable: no `pulumi config` process")

    def set_all_config(self, config: dict[str, auto.ConfigValue]) -> None:
        self.written = {k: v.value for k, v in config.items()}


def gateway(project_dir: Path) -> PulumiGateway:
    """A gateway whose PulumiCommand is never built: the steps under test start no process."""
    gw = object.__new__(CloudGateway)
    gw.project_dir, gw.extra_config, gw._ws_lock = project_dir, None, threading.Lock()
    return gw


def desired(n: int) -> DesiredEnvironment:
    pr = PullRequest(number=n, sha="a" * 40, branch="feat/$(x)", base="main", author="dev;drop", title="t")
    return DesiredEnvironment(pr=pr, config_hash="h")


def test_a_new_stack_gets_its_pr_values_and_a_creation_stamp(tmp_path: Path) -> None:
    stack = FakeStack("pr-5")
    gateway(tmp_path)._write_config(stack, desired(5), new=True)  # type: ignore[arg-type]
    assert stack.written["prenv:pr"] == "5"
    assert stack.written["prenv:branch"] == "feat-x"
    assert "prenv:createdAt" in stack.written


def test_a_push_keeps_the_creation_stamp_the_stack_file_already_has(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.pr-5.yaml").write_text("config:\n  prenv:pr: '5'\n  prenv:createdAt: 2026-01-01T00-00-00Z\n")
    stack = FakeStack("pr-5")
    gateway(tmp_path)._write_config(stack, desired(5), new=False)  # type: ignore[arg-type]
    assert "prenv:createdAt" not in stack.written
    assert stack.written["prenv:sha"] == "a" * 40


def test_pulumi_output_is_logged_per_pr_with_secrets_redacted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="prenv.gateway.workspace"):
        OutputLog(7).output("connecting to postgresql://admin:hunter2@db/postgres\n")
        OutputLog(7).output("   \n")
    assert [r.getMessage() for r in caplog.records] == ["pr-7 | connecting to [redacted]"]
