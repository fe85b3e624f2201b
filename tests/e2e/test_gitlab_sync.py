"""End to end with GitLab as the source: the real ``prenv`` CLI and ``prenv serve``, the real engine, the embedded
cluster and PostgreSQL, the merge requests (and branches) served by the fake GitLab that python-gitlab really talks
to; serve's webhooks are GitLab's documented payloads (tests/data/gitlab-webhooks).

A merge request opens, gets a push and is merged; a release branch appears and is deleted. Hostile titles and
branch names come along and never reach a name, a command or SQL.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db, naming
from prenv.service.gitlab_feedback import environment_name
from tests.fixtures.driver import PRENV
from tests.fixtures.gitlab import TOKEN
from tests.fixtures.preview import unique_pr
from tests.fixtures.serve import build_served, serving
from tests.integration.test_service_gitlab import PROJECT as HOOK_PROJECT
from tests.integration.test_service_gitlab import hook, hook_headers
from testsupport.gitlab_server import FakeGitLab
from testsupport.service_harness import wait_for

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
    readable = f"br-{branch.replace('/', '-')}-{n - naming.BRANCH_NUMBER_BASE:08d}"  # br-release-<id>-<digits>

    d.sync()
    listed = d.listed()
    assert set(listed) == {n}  # only the matching branch, keyed by its hashed number
    assert listed[n]["stack"] == readable  # named by its slug and digits, never by its raw text
    assert listed[n]["url"] == f"http://web-{readable}.preview.test"
    web = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", readable)
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "d" * 40
    labels = client.CoreV1Api(cluster_api).read_namespace(readable).metadata.labels
    assert labels["prenv.dev/pr"] == str(n)
    assert all("$" not in v and ";" not in v for v in labels.values())
    assert f"pr-{n}" not in live_namespaces(cluster_api)

    fake_gitlab.delete_branch(PROJECT, branch)
    d.sync()
    assert readable not in live_namespaces(cluster_api)
    assert d.listed() == {}
    assert not CANARY.exists()


def test_prenv_serve_takes_gitlab_webhooks_to_real_stacks_and_keeps_one_note_and_the_environment_current(
    tmp_path: Path,
    fake_gitlab: FakeGitLab,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = unique_pr()
    source = {"type": "gitlab", "gitlab": {"project": HOOK_PROJECT, "base_url": fake_gitlab.url}}
    service = build_served(
        tmp_path, project_dir, backend_url, preview_env, source, monkeypatch, token=("GITLAB_TOKEN", TOKEN)
    )
    gateway = service.reconciler.gateway

    def deployed() -> dict[int, str | None]:
        return {s.pr: s.sha for s in gateway.list_stacks()}

    def notes() -> list[str]:
        return [note["body"] for note in fake_gitlab.notes(HOOK_PROJECT, n)]

    def env() -> dict[str, Any]:
        return next(e for e in fake_gitlab.environments(HOOK_PROJECT) if e["name"] == environment_name(n))

    with serving(service) as base:
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=60, what="readiness")
            fake_gitlab.add_merge_request(HOOK_PROJECT, n, sha="1" * 40, labels=["preview"], branch=HOSTILE_BRANCH)
            opened = http.post("/webhooks/gitlab", content=hook("merge_request_open", n), headers=hook_headers())
            assert opened.status_code == 202
            wait_for(lambda: deployed().get(n) == "1" * 40, timeout=240, what="the environment")
            wait_for(lambda: len(notes()) == 1 and "ready" in notes()[0], timeout=30, what="the MR note")
            assert f"web-{n}.preview.test" in notes()[0]
            wait_for(lambda: env()["state"] == "available", timeout=30, what="the GitLab environment")
            assert env()["external_url"] == f"http://web-{n}.preview.test"

            fake_gitlab.add_merge_request(HOOK_PROJECT, n, sha="2" * 40, labels=["preview"], branch=HOSTILE_BRANCH)
            http.post("/webhooks/gitlab", content=hook("merge_request_update_commits", n), headers=hook_headers())
            wait_for(lambda: deployed().get(n) == "2" * 40, timeout=240, what="the update")
            wait_for(lambda: "2222222" in notes()[0], timeout=30, what="the note edited in place")
            assert len(notes()) == 1

            fake_gitlab.close_merge_request(HOOK_PROJECT, n, state="merged")
            http.post("/webhooks/gitlab", content=hook("merge_request_merge", n), headers=hook_headers())
            wait_for(lambda: n not in deployed(), timeout=240, what="the teardown")
            wait_for(lambda: env()["state"] == "stopped", timeout=30, what="the environment stopped")
            wait_for(lambda: "torn down" in notes()[0], timeout=30, what="the final note")
            assert len(notes()) == 1 and TOKEN not in notes()[0]
        assert f"pr-{n}" not in live_namespaces(cluster_api)
        assert not CANARY.exists()
