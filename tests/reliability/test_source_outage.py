"""GitHub goes away for many cycles — refused connections, 5xx, timeouts, rate limits — and nothing is destroyed.

Two real environments (pulumi, the embedded cluster, PostgreSQL) are listed from the fake GitHub server through the
driver's own GitHub source. Then every cycle of the outage runs the real reconciler (in process, so that dozens of
cycles stay cheap) and a few run `prenv sync` itself; each must keep both stacks, namespaces and databases. While
GitHub is away one PR closes; when it comes back the first cycle destroys exactly that one and keeps the other.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import driver, settings
from prenv.model import ActionKind
from tests.fixtures.preview import unique_pr
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR
from tests.reliability.harness import Prenv
from testsupport.github_server import FakeGitHub

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.chaos]

REPO = "octo/shop"
PULLS = rf"GET /repos/{REPO}/pulls"
CYCLES = 40  # in-process cycles of the outage, plus the CLI ones


OUTAGES = (
    "connection refused",
    "HTTP 500",
    "HTTP 502",
    "HTTP 503",
    "timeout",
    "403 rate limit",
    "secondary rate limit",
    "429",
)


def _break(gh: FakeGitHub, kind: str) -> None:
    """Make GitHub fail the next listing the way ``kind`` says (the previous failure was cleared first)."""
    if kind == "connection refused":
        gh.stop()
        gh.drop_connections()  # pooled keep-alive connections must not outlive the server
    elif kind.startswith("HTTP "):
        gh.fail(PULLS, int(kind.removeprefix("HTTP ")))
    elif kind == "timeout":
        gh.slow(PULLS, 3.0)  # the source's timeout is 1 s
    elif kind == "403 rate limit":
        gh.rate_limit(PULLS, reset_in=600)
    elif kind == "secondary rate limit":
        gh.fail(PULLS, 403, message="You have exceeded a secondary rate limit.", headers={"Retry-After": "60"})
    elif kind == "429":
        gh.fail(PULLS, 429, message="Too Many Requests", headers={"Retry-After": "30"})
    else:
        raise AssertionError(kind)


def _restore(gh: FakeGitHub) -> None:
    gh.clear_failures()
    if gh._server is None:  # stopped: bring it back on the same port
        gh.start()


def test_a_github_outage_of_many_cycles_destroys_nothing_and_the_first_good_cycle_recovers(
    tmp_path: Path,
    project_dir: Path,
    backend_url: str,
    driver_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep, close = sorted([unique_pr(), unique_pr()])
    for n in (keep, close):
        fake_github.add_pull(REPO, n, labels=["preview"])
    config = {
        "project_dir": str(project_dir),
        "source": {"type": "github", "github": {"repository": REPO, "base_url": fake_github.base_url, "timeout": 1}},
        "filters": {"labels": ["preview"]},
        "state": {"backend": backend_url},
        "reconcile": {"backoff_base_seconds": 0.1},
    }
    cli = Prenv(tmp_path / "driver", config, driver_env)
    for key in ("KUBECONFIG", "PRENV_DATABASE_ADMIN_DSN", "PULUMI_CONFIG_PASSPHRASE", "GITHUB_TOKEN"):
        monkeypatch.setenv(key, driver_env[key])
    d = driver.build(settings.load(cli.config))
    core = client.CoreV1Api(cluster_api)
    backend = harness.backend_of(backend_url)

    first = d.reconciler.sync()
    assert first.source_ok and all(o.ok for o in first.outcomes), [o.error for o in first.outcomes]
    assert {s.pr for s in d.gateway.list_stacks()} == {keep, close}

    kinds = list(itertools.islice(itertools.cycle(OUTAGES), CYCLES))
    fake_github.close_pull(REPO, close)  # closed while GitHub cannot say so
    destroyed = 0
    failures: list[str] = []
    cycles = 0
    for kind in kinds:
        _restore(fake_github)
        _break(fake_github, kind)
        result = d.reconciler.sync()
        cycles += 1
        destroyed += len(result.plan.of(ActionKind.DESTROY))
        for o in result.outcomes:
            COLLECTOR.expose("outcome error", o.error)
        if result.source_ok or result.outcomes or result.plan.of(ActionKind.DESTROY):
            failures.append(f"{kind}: source_ok={result.source_ok}, {len(result.outcomes)} operations")
    for kind in ("connection refused", "HTTP 500"):  # and the CLI says so, changing nothing
        _restore(fake_github)
        _break(fake_github, kind)
        done = cli.run("sync")
        cycles += 1
        if done.returncode != 0 or "nothing was destroyed" not in done.stderr:
            failures.append(f"CLI {kind}: exit {done.returncode}")
    alive = {s.pr for s in d.gateway.list_stacks()}
    survived = harness.leftovers(
        used=(keep, close), wanted=(keep, close), core=core, admin_dsn=postgres.dsn, backend=backend
    )

    _restore(fake_github)
    recovered = d.reconciler.sync()
    after = harness.leftovers(used=(keep, close), wanted=(keep,), core=core, admin_dsn=postgres.dsn, backend=backend)
    recovery_ok = (
        recovered.source_ok
        and recovered.plan.of(ActionKind.DESTROY) == [close]
        and all(o.ok for o in recovered.outcomes)
        and not after.missing
    )

    fake_github.close_pull(REPO, keep)
    cleanup = d.reconciler.sync()
    gone = harness.leftovers(used=(keep, close), wanted=(), core=core, admin_dsn=postgres.dsn, backend=backend)
    processes = harness.leftover_processes()

    if alive != {keep, close}:
        failures.append(f"stacks during the outage: {sorted(alive)}")
    if survived.missing:
        failures.append(f"missing during the outage: {list(survived.missing)}")
    if not recovery_ok:
        failures.append(f"recovery: plan {recovered.plan}, errors {[o.error for o in recovered.outcomes]}, {after}")
    if after.orphans() or after.pending:
        failures.append(f"after recovery: {after}")
    if not all(o.ok for o in cleanup.outcomes) or gone.orphans() or gone.pending:
        failures.append(f"clean-up: errors {[o.error for o in cleanup.outcomes]}, {gone}")
    if processes:
        failures.append(f"{len(processes)} pulumi processes still running after the clean-up")
    harness.record(
        "source-outage",
        "GitHub outage (refused, 5xx, timeout, 403/429 rate limit), many cycles",
        trials=cycles,
        failures=len(failures),
        orphans=after.orphans() + gone.orphans(),
        pending=len(after.pending) + len(gone.pending),
        processes=len(processes),
        order=20,
        unit="cycles",
        environments_destroyed_during_outage=destroyed,
        environments_kept=len(alive),
        outage_kinds=list(OUTAGES),
        recovered_on_first_good_cycle=recovery_ok,
        orphans_after_recovery=after.orphans(),
        orphans_after_clean_up=gone.orphans(),
        problems=failures[:10],
    )
    assert not failures, failures
