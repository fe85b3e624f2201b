"""TTLs outside ``prenv serve`` (issue 17 item 7), with the real engine, the embedded cluster and PostgreSQL and a file
source of PRs: ``prenv sync`` runs the same expiry rule as the service, counted from the last push, and
``prenv gc --expired`` lists what it would destroy.

The 49 hours are simulated by the TTL source's clock (as tests/e2e/test_serve_e2e.py does for the service); the
``prenv`` console script itself runs for real where no time has to pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prenv import driver, settings
from prenv.model import ActionKind
from tests.fixtures.driver import Driver
from tests.fixtures.preview import unique_pr

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def pr(n: int, sha: str, *, updated: datetime, labels: tuple[str, ...] = ("preview",)) -> dict[str, Any]:
    return {
        "number": n,
        "sha": sha * 40,
        "branch": f"feature-{n}",
        "labels": list(labels),
        "updated_at": updated.isoformat(),
    }


def stacks_of(d: driver.Driver, numbers: set[int]) -> set[int]:
    return {s.pr for s in d.gateway.list_stacks()} & numbers


def test_prenv_sync_destroys_an_environment_without_a_push_for_its_ttl_and_a_push_brings_it_back(
    tmp_path: Path, project_dir: Path, backend_url: str, preview_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in preview_env.items():
        monkeypatch.setenv(key, value)
    idle, kept, short = unique_pr(), unique_pr(), unique_pr()
    mine = {idle, kept, short}
    now = datetime.now(UTC)
    cli = Driver(tmp_path, project_dir, backend_url, preview_env)
    cli.open(
        [
            pr(idle, "a", updated=now),
            pr(kept, "b", updated=now, labels=("preview", "preview/keep")),
            pr(short, "c", updated=now, labels=("preview", "preview/ttl-3d")),
        ]
    )
    first = driver.build(settings.load(cli.config))
    assert first.ttl is not None and first.ttl.policy.default == timedelta(hours=48)  # the template's prenv:ttl
    try:
        first.reconciler.sync()
        assert stacks_of(first, mine) == mine
        assert cli.json("gc", "--expired") == {"expired": [], "removed": []}, "nothing has expired yet"

        later = now + timedelta(hours=49)
        # A comment 1 hour before "later" bumps updated_at: it does not extend the lifetime, only a push does.
        cli.open(
            [
                pr(idle, "a", updated=later - timedelta(hours=1)),
                pr(kept, "b", updated=now, labels=("preview", "preview/keep")),
                pr(short, "c", updated=now, labels=("preview", "preview/ttl-3d")),
            ]
        )
        run = driver.build(settings.load(cli.config))  # a later `prenv sync`: a new process
        assert run.ttl is not None
        run.ttl._clock = lambda: later
        result = run.reconciler.sync()
        assert result.plan.of(ActionKind.DESTROY) == [idle]
        assert stacks_of(run, mine) == {kept, short}, "preview/keep never expires; preview/ttl-3d is not due"

        cli.open(
            [
                pr(idle, "d", updated=later),  # a push
                pr(kept, "b", updated=now, labels=("preview", "preview/keep")),
                pr(short, "c", updated=now, labels=("preview", "preview/ttl-3d")),
            ]
        )
        again = driver.build(settings.load(cli.config))
        assert again.ttl is not None
        again.ttl._clock = lambda: later
        again.reconciler.sync()
        assert {s.pr: s.sha for s in again.gateway.list_stacks() if s.pr in mine}[idle] == "d" * 40
    finally:
        for n in stacks_of(first, mine):
            first.gateway.destroy(n)
