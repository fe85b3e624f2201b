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
    finally:
        proxy.close()

    gaps = [b[0] - a[0] for a, b in itertools.pairwise(down_attempts)]
    failures = [a for a in down_attempts if a[1] or not a[2]]  # a success or a permanent error while down
    backoff_ok = len(gaps) == ATTEMPTS_WHILE_DOWN - 1 and all(gap >= BACKOFF * 2**i * 0.9 for i, gap in enumerate(gaps))
    harness.record(
        "cluster-outage",
        "Kubernetes API unreachable during destroy: stack kept, backoff, converges",
        trials=len(down_attempts) + 1,
        failures=len(failures) + (not kept_every_cycle) + (not converged) + (not backoff_ok),
        orphans=after.orphans(),
        order=30,
        unit="destroy attempts",
        destroy_attempts_while_down=len(down_attempts),
        cycles_skipped_by_backoff=skipped,
        seconds_between_attempts=[round(g, 1) for g in gaps],
        stack_and_namespace_kept_while_down=kept_every_cycle,
        converged_after_return=converged,
        **{f"orphan_{k}": v for k, v in after.counts().items()},
    )
    assert len(down_attempts) == ATTEMPTS_WHILE_DOWN
    assert not failures, failures
    assert all("unreachable" in a[3] or "connect" in a[3] or "refused" in a[3] for a in down_attempts), down_attempts
    assert kept_every_cycle, "the stack or its namespace went away while the API was down"
    assert skipped > 0, "cycles within the backoff should skip the stack"
    assert backoff_ok, gaps
    assert converged
    assert after.orphans() == 0 and not after.missing, after
