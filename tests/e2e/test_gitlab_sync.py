"""End to end with GitLab as the source: the real ``prenv`` CLI, the real engine, the embedded cluster and PostgreSQL,
the merge requests (and branches) served by the fake GitLab that python-gitlab really talks to.

A merge request opens, gets a push and is merged; a release branch appears and is deleted. Hostile titles and
branch names come along and never reach a name, a command or SQL.
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
from tests.fixtures.gitlab import TOKEN
from tests.fixtures.preview import unique_pr
from testsupport.gitlab_server import FakeGitLab

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROJECT = "platform/shop"
CANARY = Path("/tmp/prenv-gitlab-e2e-pwned")
HOSTILE_BRANCH = f"x$(touch {CANARY});'; DROP DATABASE postgres; --"


class GitLabDriver:
    def __init__(self, root: Path, project_dir: Path, backend: str, env: dict[str, str], source: dict[str, Any]):
        self.config = root / "prenv.yaml"
        self.env = {**env, "GITLAB_TOKEN": TOKEN}
        self.config.write_text(
            yaml.safe_dump({"project_dir": str(project_dir), "state": {"backend": backend}, **source})
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRENV, *args, "-c", str(self.config)], env=self.env, capture_output=True, text=True, timeout=900
        )

    def sync(self) -> str:
        done = self.run("sync")
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert TOKEN not in output  # the token reaches python-gitlab only, never a log line
        return output

    def listed(self) -> dict[int, dict[str, Any]]:
        done = self.run("list", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        return {e["pr"]: e for e in json.loads(done.stdout)}


def live_namespaces(api: client.ApiClient) -> set[str]:
    return {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items if n.status.phase != "Terminating"}


def test_a_merge_request_opens_gets_a_push_and_is_merged_with_prenv_sync(
    tmp_path: Path,
    fake_gitlab: FakeGitLab,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    iid = unique_pr()
    title = "<script>alert(1)</script> ' OR 1=1 -- ünïcødé"
    fake_gitlab.add_merge_request(PROJECT, iid, sha="a" * 40, branch=HOSTILE_BRANCH, title=title, labels=["preview"])
    fake_gitlab.add_merge_request(PROJECT, iid + 1, sha="b" * 40, labels=["other"])  # filtered out
    source = {
        "source": {"type": "gitlab", "gitlab": {"project": PROJECT, "base_url": fake_gitlab.url}},
        "filters": {"labels": ["preview"]},
    }
    d = GitLabDriver(tmp_path, project_dir, backend_url, preview_env, source)

    d.sync()
    apps = client.AppsV1Api(cluster_api)
    web = apps.read_namespaced_deployment("web", f"pr-{iid}")
    assert web.status.available_replicas == 1
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "a" * 40
    assert set(d.listed()) == {iid} and d.listed()[iid]["status"] == "ready"
    with psycopg.connect(postgres.dsn) as conn:
        assert db.database_exists(conn, f"pr_{iid}") and db.database_exists(conn, "postgres")

    fake_gitlab.add_merge_request(PROJECT, iid, sha="c" * 40, branch=HOSTILE_BRANCH, title=title, labels=["preview"])
    d.sync()
    web = apps.read_namespaced_deployment("web", f"pr-{iid}")
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "c" * 40

    fake_gitlab.close_merge_request(PROJECT, iid, state="merged")
    d.sync()
    assert f"pr-{iid}" not in live_namespaces(cluster_api)
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{iid}") and not db.role_exists(conn, f"pr_{iid}")
    assert d.listed() == {}
    assert not CANARY.exists()


def test_a_release_branch_gets_an_environment_until_it_is_deleted(
    tmp_path: Path,
    fake_gitlab: FakeGitLab,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
) -> None:
    branch = f"release/{unique_pr()}"
    fake_gitlab.add_branch(PROJECT, branch, "d" * 40)
    fake_gitlab.add_branch(PROJECT, "main", "e" * 40)
    fake_gitlab.add_branch(PROJECT, HOSTILE_BRANCH, "f" * 40)
    source = {
        "source": {"type": "gitlab-branches", "gitlab": {"project": PROJECT, "base_url": fake_gitlab.url}},
        "filters": {"branch_include": "^release/"},
    }
    d = GitLabDriver(tmp_path, project_dir, backend_url, preview_env, source)
    n = naming.branch_number(branch)

    d.sync()
    assert set(d.listed()) == {n}  # only the matching branch, named by its hash, never by its text
    web = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", f"pr-{n}")
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "d" * 40
    labels = client.CoreV1Api(cluster_api).read_namespace(f"pr-{n}").metadata.labels
    assert all("$" not in v and ";" not in v for v in labels.values())

    fake_gitlab.delete_branch(PROJECT, branch)
    d.sync()
    assert f"pr-{n}" not in live_namespaces(cluster_api)
    assert d.listed() == {}
    assert not CANARY.exists()
