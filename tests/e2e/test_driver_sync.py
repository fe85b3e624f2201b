"""End to end through the CLI: a file of three PRs → `prenv sync` → environments; push, close, and quiet cycles.

Runs the real `prenv` console script against the real toolchain, the embedded cluster and PostgreSQL, with a
``file://`` backend and, in a second test, an ``s3://`` backend on moto's server. TLS as in production:
``tls.mode: wildcard``, the shared stack holding the certificate the cluster's CA signed, Traefik serving it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db
from prenv.cluster import ClusterInfo
from tests.fixtures.cluster import wait_for_certificate
from tests.fixtures.driver import Driver
from tests.fixtures.preview import BASE_DOMAIN, shared_stack, unique_pr

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CANARY = Path("/tmp/prenv-e2e-pwned")
HOSTILE = {  # attacker-controlled PR metadata: it must never reach a name, a command or SQL
    "branch": f"x$(touch {CANARY});'; DROP DATABASE postgres; --",
    "author": "eve`id`<script>",
    "title": "ünïcødé {{ .Values }} ' OR 1=1 -- " * 20,
}


def pr(n: int, sha: str) -> dict[str, Any]:
    return {"number": n, "sha": sha * 40, "labels": ["preview"], **HOSTILE}


def run_lifecycle(d: Driver, cluster: ClusterInfo, cluster_api: client.ApiClient, postgres: LocalPostgres) -> None:
    a, b, c, bad = unique_pr(), unique_pr(), unique_pr(), unique_pr()
    # A record with a control character in its title is skipped with a logged reason, never deployed.
    d.open([pr(a, "a"), pr(b, "b"), pr(c, "c"), {**pr(bad, "e"), "title": "line\nbreak"}])
    assert d.json("sync", "--dry-run") == {"create": sorted([a, b, c]), "update": [], "destroy": [], "unchanged": []}

    assert d.run("sync").returncode == 0
    apps = client.AppsV1Api(cluster_api)
    for n in (a, b, c):
        assert apps.read_namespaced_deployment("web", f"pr-{n}").status.available_replicas == 1
    labels = client.CoreV1Api(cluster_api).read_namespace(f"pr-{a}").metadata.labels
    assert labels["prenv.dev/author"] == "eve-id-script"
    assert not CANARY.exists()
    with psycopg.connect(postgres.dsn) as conn:
        assert db.database_exists(conn, "postgres")
    listed = {e["pr"]: e for e in d.json("list")}
    assert set(listed) == {a, b, c}
    assert listed[a]["status"] == "ready"
    assert listed[a]["url"] == f"https://web-{a}.{BASE_DOMAIN}"
    # Traefik presents the shared wildcard certificate (copied into pr-<a>) for the PR's host; a handshake only,
    # the pods are KWOK's. The cluster's CA verifies the chain and the name.
    wildcard = base64.b64decode(
        client.CoreV1Api(cluster_api).read_namespaced_secret("prenv-wildcard-tls", f"pr-{a}").data["tls.crt"]
    )
    wait_for_certificate(cluster, f"web-{a}.{BASE_DOMAIN}", wildcard)
    assert set(listed[a]) == {
        "pr",
        "stack",
        "url",
        "sha",
        "status",
        "age_seconds",
        "error",
        "drift",
        "asleep",
        "requests",
        "running_seconds",
    }
    assert listed[a]["asleep"] is False and listed[a]["drift"] is None
    generation_a = apps.read_namespaced_deployment("web", f"pr-{a}").metadata.generation

    d.open([pr(a, "a"), pr(b, "d"), pr(c, "c")])  # a push to b
    assert d.json("sync", "--dry-run") == {"create": [], "update": [b], "destroy": [], "unchanged": sorted([a, c])}
    assert d.run("sync").returncode == 0
    annotations = apps.read_namespaced_deployment("web", f"pr-{b}").spec.template.metadata.annotations
    assert annotations["prenv.dev/sha"] == "d" * 40
    assert apps.read_namespaced_deployment("web", f"pr-{a}").metadata.generation == generation_a

    d.open([pr(a, "a"), pr(b, "d")])  # c closed
    assert d.run("sync").returncode == 0
    core = client.CoreV1Api(cluster_api)
    live = [n.metadata.name for n in core.list_namespace().items if n.status.phase != "Terminating"]
    assert f"pr-{c}" not in live
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{c}")
        assert not db.role_exists(conn, f"pr_{c}")
    assert {e["pr"] for e in d.json("list")} == {a, b}

    assert d.json("sync", "--dry-run") == {"create": [], "update": [], "destroy": [], "unchanged": sorted([a, b])}
    d.open([])
    assert d.run("sync").returncode == 0
    assert d.json("list") == []


def test_three_prs_from_a_file_live_and_die_with_prenv_sync_on_a_file_backend(
    tmp_path: Path,
    wildcard_project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    with shared_stack(wildcard_project_dir, backend_url, preview_env):
        d = Driver(tmp_path, wildcard_project_dir, backend_url, preview_env)
        run_lifecycle(d, cluster, cluster_api, postgres)


def test_the_same_lifecycle_on_an_s3_backend(
    tmp_path: Path,
    wildcard_project_dir: Path,
    preview_env: dict[str, str],
    s3_backend: str,
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    # A shared backend refuses the public development passphrase (prenv.gateway.secrets): this one sets its own.
    env = {
        **preview_env,
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "PULUMI_CONFIG_PASSPHRASE": "e2e-s3-" + os.urandom(12).hex(),
    }
    with shared_stack(wildcard_project_dir, s3_backend, env):
        run_lifecycle(Driver(tmp_path, wildcard_project_dir, s3_backend, env), cluster, cluster_api, postgres)
