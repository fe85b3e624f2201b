"""Cost on the PR: `prenv list --json` says what an environment reserves (the CPU and memory its pods request, read
from its namespace's ResourceQuota) and for how long it has run.

The real `prenv` console script, engine and embedded cluster (KWOK nodes), a ``file://`` backend; the expected
numbers are the template's own (each built-in service's requests, one replica each), not constants of the test.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from kubernetes import client

from prenv import stackconfig, template
from prenv.reservations import parse_quantity
from tests.fixtures.driver import Driver
from tests.fixtures.preview import shared_stack, unique_pr

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def template_requests(project: Path) -> tuple[Decimal, Decimal]:
    """CPU cores and memory bytes the template's services request (one replica each, components/app.py)."""
    tmpl = stackconfig.load_template(template.read_template_file(project))
    assert tmpl.app.kind == "services" and tmpl.services, "the shipped template's built-in services"
    cpu = sum((parse_quantity(s.resources.cpu) for s in tmpl.services), Decimal(0))
    memory = sum((parse_quantity(s.resources.memory) for s in tmpl.services), Decimal(0))
    return cpu, memory


def test_prenv_list_shows_what_a_deployed_environment_requests_and_how_long_it_has_run(
    tmp_path: Path,
    wildcard_project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
) -> None:
    n = unique_pr()
    cpu, memory = template_requests(wildcard_project_dir)
    with shared_stack(wildcard_project_dir, backend_url, preview_env):
        d = Driver(tmp_path, wildcard_project_dir, backend_url, preview_env)
        d.open(
            [{"number": n, "sha": "c" * 40, "labels": ["preview"], "branch": "costly", "author": "dev", "title": "t"}]
        )
        try:
            before = time.time()
            assert d.run("sync").returncode == 0
            (listed,) = d.json("list")
            assert listed["status"] == "ready"
            assert listed["requests"] == {"cpu_cores": float(cpu), "memory_bytes": int(memory)}
            ran = listed["running_seconds"]
            assert isinstance(ran, int) and 0 <= ran <= time.time() - before + 1
            # The same numbers the pods state, as the API server added them up.
            pods = client.CoreV1Api(cluster_api).list_namespaced_pod(f"pr-{n}").items
            stated = sum(
                (parse_quantity(c.resources.requests["cpu"]) for p in pods for c in p.spec.containers), Decimal(0)
            )
            assert stated == cpu

            env_without_cluster = {**preview_env, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
            (tmp_path / "blind").mkdir()
            blind = Driver(tmp_path / "blind", wildcard_project_dir, backend_url, env_without_cluster)
            blind.open([])
            (unknown,) = blind.json("list")
            assert unknown["pr"] == n and unknown["requests"] is None, "a cluster that cannot be asked: unknown"
        finally:
            d.open([])
            assert d.run("sync").returncode == 0
