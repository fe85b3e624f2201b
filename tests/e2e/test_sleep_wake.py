"""Sleep and wake (issue 17 item 5) with the real engine, the embedded cluster (KWOK nodes) and PostgreSQL, and a file
source of PRs: an environment idle for longer than the template's ``prenv:sleepAfter`` has its Deployments at zero
replicas while its Service, Ingress and database stay; an unchanged sleeping PR costs no pulumi run; a push wakes it;
``/preview sleep`` and ``/preview wake`` (requests to the sleep source, as prenv serve makes them) do the same.

The two idle hours are simulated by the sleep source's clock (as tests/e2e/test_ttl_sync.py does for TTLs); the
``prenv`` console script runs for real for ``prenv list --json``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import driver, settings
from prenv.model import ActionKind
from prenv.reconcile import CycleResult
from prenv.sleep import Request
from tests.fixtures.driver import Driver
from tests.fixtures.preview import BASE_DOMAIN, SEED, unique_pr, write_project

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

logger = logging.getLogger(__name__)


def build(cli: Driver, clock: datetime) -> driver.Driver:
    """A new `prenv sync` process whose sleep source's clock says ``clock``."""
    d = driver.build(settings.load(cli.config))
    assert d.sleep is not None
    d.sleep._clock = lambda: clock
    return d


def timed(what: str, result: CycleResult) -> None:
    """Log how long the pass's up took (``-o log_cli=true --log-cli-level=INFO`` shows it)."""
    for outcome in result.outcomes:
        logger.info("%s: %s of PR %s took %.1f s", what, outcome.action.kind.value, outcome.action.pr, outcome.seconds)


def replicas(apps: client.AppsV1Api, n: int) -> int:
    return int(apps.read_namespaced_deployment("web", f"pr-{n}").spec.replicas)


def database_exists(postgres: LocalPostgres, n: int) -> bool:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"pr_{n}",)).fetchone() is not None


def test_an_idle_environment_sleeps_with_its_database_kept_and_a_push_or_wake_brings_its_pods_back(
    tmp_path: Path,
    backend_url: str,
    preview_env: dict[str, str],
    postgres: LocalPostgres,
    cluster_api: client.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in preview_env.items():
        monkeypatch.setenv(key, value)
    project = write_project(
        tmp_path / "project",
        baseDomain=BASE_DOMAIN,
        database={"enabled": True, "namePrefix": "pr_", "template": SEED},
        sleepAfter="1h",
    )
    n = unique_pr()
    apps, core = client.AppsV1Api(cluster_api), client.CoreV1Api(cluster_api)
    now = datetime.now(UTC)
    cli = Driver(tmp_path, project, backend_url, preview_env)
    cli.open([{"number": n, "sha": "a" * 40, "branch": "sleepy", "labels": ["preview"]}])
    first = build(cli, now)
    try:
        timed("create", first.reconciler.sync())
        assert replicas(apps, n) == 1
        assert [r["asleep"] for r in cli.json("list") if r["pr"] == n] == [False]

        later = now + timedelta(hours=2)
        idle = build(cli, later)
        result = idle.reconciler.sync()
        timed("sleep (idle)", result)
        assert result.plan.of(ActionKind.UPDATE) == [n], "two hours without a push: put to sleep"
        assert replicas(apps, n) == 0
        assert core.list_namespaced_pod(f"pr-{n}", label_selector="app.kubernetes.io/name=web").items == []
        assert core.read_namespaced_service("web", f"pr-{n}").spec.ports[0].port == 80, "the Service stays"
        assert database_exists(postgres, n), "the database branch stays"
        (listed,) = [r for r in cli.json("list") if r["pr"] == n]
        assert (listed["asleep"], listed["status"]) == (True, "ready")

        again = build(cli, later + timedelta(hours=5))
        assert again.reconciler.sync().plan.of(ActionKind.UNCHANGED) == [n], "an unchanged sleeping PR: no run"

        cli.open([{"number": n, "sha": "b" * 40, "branch": "sleepy", "labels": ["preview"]}])  # a push
        pushed = build(cli, later)
        timed("wake (push)", pushed.reconciler.sync())
        assert replicas(apps, n) == 1, "a push wakes it"
        (stack,) = [s for s in pushed.gateway.list_stacks() if s.pr == n]
        assert (stack.sha, stack.asleep) == ("b" * 40, False)

        asked = build(cli, now)  # a fresh push: no idle time has passed
        assert asked.sleep is not None
        asked.sleep.request(n, Request.SLEEP)
        timed("/preview sleep", asked.reconciler.sync())
        assert replicas(apps, n) == 0, "/preview sleep puts it to sleep now"
        asked.sleep.request(n, Request.WAKE)
        timed("/preview wake", asked.reconciler.sync())
        assert replicas(apps, n) == 1, "/preview wake wakes it"
        assert database_exists(postgres, n)
    finally:
        for s in first.gateway.list_stacks():
            if s.pr == n:
                first.gateway.destroy(n)
