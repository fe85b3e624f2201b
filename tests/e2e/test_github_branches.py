"""End to end with ``source.type: github-branches``: the real ``prenv sync`` against the fake GitHub that PyGithub
really talks to, the real engine, the embedded cluster and PostgreSQL. A release branch with a hostile name gets an
environment with readable names (stack, namespace, host ``br-<slug>-<digits>``) made of nothing but its slug and the
digits of its hashed number, is updated when the branch moves and destroyed when it is deleted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db, naming
from tests.fixtures.driver import PRENV
from tests.fixtures.preview import unique_pr
from testsupport.github_server import FakeGitHub

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = "octo/shop"
TOKEN = "ghp_fake_branches_e2e"
CANARY = Path("/tmp/prenv-github-branches-e2e-pwned")


def run(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRENV, *args, "-c", str(config)],
        env={**env, "GITHUB_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=900,
    )


def sync(config: Path, env: dict[str, str]) -> None:
    done = run(config, env, "sync")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert TOKEN not in done.stdout + done.stderr


def listed(config: Path, env: dict[str, str]) -> dict[int, dict[str, Any]]:
    done = run(config, env, "list", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return {e["pr"]: e for e in json.loads(done.stdout)}


def live_namespaces(api: client.ApiClient) -> set[str]:
    return {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items if n.status.phase != "Terminating"}


def test_a_github_release_branch_with_a_hostile_name_gets_readable_names_until_it_is_deleted(
    tmp_path: Path,
    fake_github: FakeGitHub,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    u = unique_pr()
    branch = f"release/{u}/Hot_Fix.$(touch {CANARY});--"
    fake_github.add_branch(REPO, branch, "a" * 40)
    fake_github.add_branch(REPO, "main", "b" * 40)
    config = tmp_path / "prenv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "project_dir": str(project_dir),
                "state": {"backend": backend_url},
                "source": {"type": "github-branches", "github": {"repository": REPO, "base_url": fake_github.base_url}},
                "filters": {"branch_include": "^release/"},
            }
        )
    )
    n = naming.branch_number(branch)
    slug = f"release-{u}-hot-fix-touch-tmp-prenv-github-branches-e2e-pwned"[: naming.SLUG_MAX].rstrip("-")
    readable = f"br-{slug}-{naming.branch_digits(n)}"

    sync(config, preview_env)
    envs = listed(config, preview_env)
    assert set(envs) == {n} and envs[n]["stack"] == readable and envs[n]["status"] == "ready"
    assert envs[n]["url"] == f"http://web-{readable}.preview.test"
    web = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", readable)
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "a" * 40
    with psycopg.connect(postgres.dsn) as conn:
        assert db.database_exists(conn, f"pr_{n}")

    fake_github.add_branch(REPO, branch, "c" * 40)  # a push moves the branch
    sync(config, preview_env)
    web = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", readable)
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "c" * 40

    fake_github.delete_branch(REPO, branch)
    sync(config, preview_env)
    assert listed(config, preview_env) == {}
    assert readable not in live_namespaces(cluster_api)
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{n}") and not db.role_exists(conn, f"pr_{n}")
    assert not CANARY.exists()
