"""The Kubernetes API goes away during a destroy: the stack is kept, retried with backoff, and converges afterwards.

The stack talks to the session's cluster through a loopback TCP proxy (its kubeconfig names the proxy's port; TLS
passes through untouched). Closing the proxy is the outage — connections refused, open ones reset — without
touching the apiserver other tests share. The reconciler runs in process with a short backoff so that the retry
schedule is observable: a destroy attempt fails with a temporary error, the cycles within the backoff skip it, the
next attempt after the backoff fails again with a doubled delay, and once the API is back the next attempt destroys
everything and only then removes the stack.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import driver, settings
from prenv.cluster import ClusterInfo
from prenv.model import ActionKind
from prenv.reconcile import SkipReason
from tests.fixtures.preview import unique_pr
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR
from tests.reliability.harness import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.chaos]

BACKOFF = 2.0
ATTEMPTS_WHILE_DOWN = 3


def _proxied_kubeconfig(cluster: ClusterInfo, proxy: TcpProxy, dest: Path) -> Path:
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in doc["clusters"]:
        server = urlsplit(entry["cluster"]["server"])
        entry["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy.port}"
    dest.write_text(yaml.safe_dump(doc))
    return dest


def test_a_destroy_while_the_kubernetes_api_is_down_keeps_the_stack_backs_off_and_converges_when_it_returns(
    tmp_path: Path,
    project_dir: Path,
    backend_url: str,
    driver_env: dict[str, str],
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = urlsplit(cluster.server)
    proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 443)).open()
    try:
        kubeconfig = _proxied_kubeconfig(cluster, proxy, tmp_path / "kubeconfig-proxied")
        n = unique_pr()
        prs = tmp_path / "prs.yaml"
        prs.write_text(yaml.safe_dump([{"number": n, "sha": "c" * 40, "branch": "b", "labels": ["preview"]}]))
        config = tmp_path / "prenv.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "project_dir": str(project_dir),
                    "source": {"type": "file", "file": {"path": str(prs)}},
                    "filters": {"labels": ["preview"]},
                    "state": {"backend": backend_url},
                    "reconcile": {"backoff_base_seconds": BACKOFF, "backoff_max_seconds": 60},
                }
            )
        )
        for key in ("PRENV_DATABASE_ADMIN_DSN", "PULUMI_CONFIG_PASSPHRASE"):
            monkeypatch.setenv(key, driver_env[key])
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        d = driver.build(settings.load(config))
        core = client.CoreV1Api(cluster_api)  # the test's own view goes straight to the apiserver
        backend = harness.backend_of(backend_url)

        created = d.reconciler.sync()
        assert [o.ok for o in created.outcomes] == [True], [o.error for o in created.outcomes]
        assert proxy.accepted > 0, "the stack did not go through the proxy"

        prs.write_text("[]\n")  # the PR closes ...
        proxy.close()  # ... while the API is unreachable
        attempts: list[tuple[float, bool, bool, str]] = []  # (time, ok, temporary, error)
        skipped = 0
        kept_every_cycle = True
        started = time.monotonic()
        deadline = started + 600
        while len(attempts) < ATTEMPTS_WHILE_DOWN and time.monotonic() < deadline:
            result = d.reconciler.sync()
            for o in result.outcomes:
                COLLECTOR.expose("outcome error", o.error)
                if o.skipped is SkipReason.BACKING_OFF:
                    skipped += 1
                elif o.skipped is None:
                    attempts.append((time.monotonic() - started, o.ok, o.temporary, o.error or ""))
            kept_every_cycle &= n in {s.pr for s in d.gateway.list_stacks()} and harness.namespace_exists(
                core, f"pr-{n}"
            )
            time.sleep(0.5)
        down_attempts = list(attempts)

        proxy.open()  # the API is back (same port)
        converged = False
        while time.monotonic() < deadline:
            result = d.reconciler.sync()
            if any(o.ok and o.action.kind is ActionKind.DESTROY for o in result.outcomes):
                converged = True
                break
            for o in result.outcomes:
                if o.skipped is None:
                    attempts.append((time.monotonic() - started, o.ok, o.temporary, o.error or ""))
            time.sleep(0.5)
        after = harness.leftovers(used=(n,), wanted=(), core=core, admin_dsn=postgres.dsn, backend=backend)
        processes = harness.leftover_processes()
    finally:
        proxy.close()

    gaps = [b[0] - a[0] for a, b in itertools.pairwise(down_attempts)]
    backoff_ok = len(gaps) == ATTEMPTS_WHILE_DOWN - 1 and all(gap >= BACKOFF * 2**i * 0.9 for i, gap in enumerate(gaps))
    problems = [f"while down: ok={a[1]}, temporary={a[2]}: {a[3][:200]}" for a in down_attempts if a[1] or not a[2]]
    problems += [
        f"unclear error while down: {a[3][:200]}"
        for a in down_attempts
        if not ("unreachable" in a[3] or "connect" in a[3] or "refused" in a[3])
    ]
    if len(down_attempts) != ATTEMPTS_WHILE_DOWN:
        problems.append(f"{len(down_attempts)} destroy attempts while down, not {ATTEMPTS_WHILE_DOWN}")
    if not kept_every_cycle:
        problems.append("the stack or its namespace went away while the API was down")
    if skipped == 0:
        problems.append("no cycle within the backoff skipped the stack")
    if not backoff_ok:
        problems.append(f"attempts {gaps} apart, not the doubling backoff from {BACKOFF}s")
    if not converged:
        problems.append("the destroy did not converge after the API returned")
    if after.orphans() or after.missing:
        problems.append(f"after convergence: {after}")
    if after.pending:
        problems.append(f"pending operations after convergence on {list(after.pending)}")
    if processes:
        problems.append(f"{len(processes)} pulumi processes still running after convergence")
    breakdown: dict[str, Any] = {f"orphan_{k}": v for k, v in after.counts().items()}
    harness.record(
        "cluster-outage",
        "Kubernetes API unreachable during destroy: stack kept, backoff, converges",
        trials=len(down_attempts) + 1,
        failures=len(problems),
        orphans=after.orphans(),
        pending=len(after.pending),
        processes=len(processes),
        order=30,
        unit="destroy attempts",
        destroy_attempts_while_down=len(down_attempts),
        cycles_skipped_by_backoff=skipped,
        seconds_between_attempts=[round(g, 1) for g in gaps],
        stack_and_namespace_kept_while_down=kept_every_cycle,
        converged_after_return=converged,
        problems=problems[:10],
        **breakdown,
    )
    assert not problems, problems
