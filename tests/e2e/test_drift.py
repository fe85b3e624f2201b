"""Drift: a change made directly in the cluster is found by `prenv drift` and put back by `prenv drift --heal`.

The real `prenv` console script, engine and embedded cluster (KWOK nodes), a ``file://`` backend: a PR is
deployed by `prenv sync`, then its Service is deleted with the Kubernetes API, as someone with kubectl would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.driver import Driver
from tests.fixtures.preview import shared_stack, unique_pr

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def drift(d: Driver, *args: str) -> tuple[int, list[dict[str, Any]]]:
    done = d.run("drift", *args, "--json")
    assert done.returncode in (0, 2), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def test_a_service_deleted_in_the_cluster_is_found_as_drift_and_healed(
    tmp_path: Path,
    wildcard_project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
) -> None:
    n = unique_pr()
    core = client.CoreV1Api(cluster_api)
    with shared_stack(wildcard_project_dir, backend_url, preview_env):
        d = Driver(tmp_path, wildcard_project_dir, backend_url, preview_env)
        d.open(
            [{"number": n, "sha": "a" * 40, "labels": ["preview"], "branch": "drifty", "author": "dev", "title": "t"}]
        )
        try:
            assert d.run("sync").returncode == 0
            status, found = drift(d)
            assert (status, [(f["pr"], f["changes"]) for f in found]) == (0, [(n, {})])

            core.delete_namespaced_service("web", f"pr-{n}")
            status, found = drift(d)
            assert status == 2, "drift not healed exits 2"
            assert [(f["pr"], f["changes"], f["healed"]) for f in found] == [(n, {"create": 1}, False)]
            (listed,) = d.json("list")
            assert listed["drift"]["changes"] == {"create": 1} and listed["drift"]["healed"] is False
            assert listed["status"] == "ready", "drift is reported, not a failed environment"

            status, found = drift(d, "--heal")
            assert (status, [(f["changes"], f["healed"]) for f in found]) == (0, [({"create": 1}, True)])
            assert core.read_namespaced_service("web", f"pr-{n}").spec.ports[0].port == 80
            status, found = drift(d)
            assert (status, [f["changes"] for f in found]) == (0, [{}])
            # Healing is no deployment of a new commit: the sync after it has nothing to do.
            assert d.json("sync", "--dry-run") == {"create": [], "update": [], "destroy": [], "unchanged": [n]}
        finally:
            d.open([])
            assert d.run("sync").returncode == 0
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_service("web", f"pr-{n}")
    assert gone.value.status == 404
