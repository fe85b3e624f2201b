"""`prenv sync --dry-run --json` with ``source.type: gitlab`` and ``gitlab-branches`` against the fake GitLab: the
CLI's own settings, driver and (empty, file://) backend; only the pulumi runs are left out (--dry-run).

The full `prenv sync` lifecycle with the real engine, cluster and PostgreSQL is the file-source e2e test
(tests/e2e/test_driver_sync.py); the source is the only part that differs here, and it is exercised end to end by
tests/integration/test_service_gitlab.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from prenv import naming
from prenv.cli import app
from tests.fixtures.gitlab import TOKEN
from testsupport.gitlab_server import FakeGitLab

PROJECT_DIR = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, fake: FakeGitLab, kind: str, filters: str) -> Path:
    path = tmp_path / "prenv.yaml"
    path.write_text(
        f"project_dir: {PROJECT_DIR}\n"
        f"state:\n  backend: file://{tmp_path / 'state'}\n"
        f"source:\n  type: {kind}\n  gitlab:\n    project: platform/shop\n    base_url: {fake.url}\n"
        f"filters:\n{filters}"
    )
    return path


def plan(path: Path) -> dict[str, list[int]]:
    result = CliRunner().invoke(
        app, ["sync", "--dry-run", "--json", "--config", str(path)], env={"GITLAB_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_sync_plans_the_open_labelled_non_draft_merge_requests(fake_gitlab: FakeGitLab, tmp_path: Path) -> None:
    fake_gitlab.add_merge_request("platform/shop", 1, labels=["preview"])
    fake_gitlab.add_merge_request("platform/shop", 2)
    fake_gitlab.add_merge_request("platform/shop", 3, labels=["preview"], draft=True)
    fake_gitlab.add_merge_request("platform/shop", 4, labels=["preview"], fork=True)
    fake_gitlab.add_merge_request("platform/shop", 5, labels=["preview"])
    fake_gitlab.close_merge_request("platform/shop", 5, state="merged")

    assert plan(config(tmp_path, fake_gitlab, "gitlab", "  labels: [preview]\n")) == {
        "create": [1],
        "update": [],
        "destroy": [],
        "unchanged": [],
    }


def test_sync_plans_one_environment_per_matching_branch(fake_gitlab: FakeGitLab, tmp_path: Path) -> None:
    for name in ("main", "release/1.2", "release/1.3", "feature/x"):
        fake_gitlab.add_branch("platform/shop", name, "a" * 40)

    result = plan(config(tmp_path, fake_gitlab, "gitlab-branches", "  branch_include: ^release/\n"))

    assert result["create"] == sorted(naming.branch_number(b) for b in ("release/1.2", "release/1.3"))


def test_sync_with_gitlab_down_plans_nothing(fake_gitlab: FakeGitLab, tmp_path: Path) -> None:
    path = config(tmp_path, fake_gitlab, "gitlab", "  labels: [preview]\n")
    fake_gitlab.fail(r"merge_requests", 503)

    assert plan(path) == {"create": [], "update": [], "destroy": [], "unchanged": []}
