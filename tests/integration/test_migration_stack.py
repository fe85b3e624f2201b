"""The migration Job for real (embedded KWOK cluster, real ``pulumi up``): it completes before the app's Deployment is
created, a push runs the next sha's Job in place of the last one, and destroy leaves no Job behind.

KWOK completes a Job's pod without running it (its ``pod-complete`` stage), so this checks ordering and lifecycle;
what a migration does to the database needs the real node.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from prenv.gateway import gateway_for
from prenv.model import DesiredEnvironment, PullRequest
from prenv.toolchain import cache_dir
from tests.fixtures.preview import BASE_DOMAIN, SEED, unique_pr, write_project

pytestmark = pytest.mark.integration

SHA1 = "a1" * 20
SHA2 = "b2" * 20


def desired(n: int, sha: str) -> DesiredEnvironment:
    pr = PullRequest(number=n, sha=sha, branch="feat/x", base="main", author="dev", title="t")
    return DesiredEnvironment(pr=pr, config_hash="h")


def test_the_migration_job_completes_before_the_app_rolls_out_once_per_sha_and_is_gone_after_destroy(
    tmp_path: Path, backend_url: str, preview_env: dict[str, str], cluster_api: client.ApiClient
) -> None:
    migrate = {"command": ["/app", "migrate"], "timeoutSeconds": 60}
    project = write_project(
        tmp_path / "project",
        baseDomain=BASE_DOMAIN,
        database={"enabled": True, "namePrefix": "pr_", "template": SEED, "migrate": migrate},
    )
    gw = gateway_for(project, backend_url, preview_env, pulumi_root=cache_dir())
    batch, apps = client.BatchV1Api(cluster_api), client.AppsV1Api(cluster_api)
    n = unique_pr()
    ns = f"pr-{n}"
    try:
        gw.up(desired(n, SHA1))
        job = batch.read_namespaced_job(f"prenv-migrate-{SHA1[:12]}", ns)
        assert job.status.succeeded == 1
        container = job.spec.template.spec.containers[0]
        assert container.command == ["/app", "migrate"]
        assert {e.name for e in container.env} >= {"DATABASE_URL", "PRENV_PR", "PRENV_SHA"}
        web = apps.read_namespaced_deployment("web", ns)
        assert web.metadata.creation_timestamp >= job.status.completion_time

        gw.up(desired(n, SHA2))
        jobs = [j.metadata.name for j in batch.list_namespaced_job(ns).items if j.metadata.deletion_timestamp is None]
        assert jobs == [f"prenv-migrate-{SHA2[:12]}"]
        assert batch.read_namespaced_job(jobs[0], ns).status.succeeded == 1
    finally:
        gw.destroy(n)
    left = batch.list_job_for_all_namespaces(label_selector=f"prenv.dev/pr={n}").items
    assert [j.metadata.name for j in left if j.metadata.deletion_timestamp is None] == []
