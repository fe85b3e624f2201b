"""Backward compatibility of branch environments' names on the real engine: a branch environment whose stack was made
before slugs (``pr-9xxxxxxxx``, numeric namespace) keeps being updated under its old names and is destroyed when its
branch is deleted, while the next branch gets a readable ``br-<slug>-<digits>`` stack.

The real ``prenv`` CLI, the real engine, the embedded cluster and PostgreSQL; the branches are served by the fake
GitLab that python-gitlab really talks to. The old stack is made as before slugs: ``prenv up --pr <number>`` (CI mode
knows no slug, so it names the stack ``pr-<n>``, as the branch sources did).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db, naming
from tests.e2e.test_gitlab_sync import PROJECT, GitLabDriver, live_namespaces
from tests.fixtures.preview import unique_pr
from testsupport.gitlab_server import FakeGitLab

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_branch_stack_made_before_slugs_is_updated_under_its_old_name_and_destroyed_with_its_branch(
    tmp_path: Path,
    fake_gitlab: FakeGitLab,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    old = f"release/{unique_pr()}"
    n = naming.branch_number(old)
    source = {
        "source": {"type": "gitlab-branches", "gitlab": {"project": PROJECT, "base_url": fake_gitlab.url}},
        "filters": {"branch_include": "^release/"},
    }
    d = GitLabDriver(tmp_path, project_dir, backend_url, preview_env, source)
    made = d.run("up", "--pr", str(n), "--sha", "1" * 40)
    assert made.returncode == 0, (made.stdout + made.stderr)[-3000:]
    assert f"pr-{n}" in live_namespaces(cluster_api)

    fake_gitlab.add_branch(PROJECT, old, "2" * 40)  # the branch moved on since
    d.sync()
    listed = d.listed()
    assert listed[n]["stack"] == f"pr-{n}" and listed[n]["sha"] == "2" * 40  # updated in place
    web = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", f"pr-{n}")
    assert web.spec.template.metadata.annotations["prenv.dev/sha"] == "2" * 40
    assert not any(ns.startswith("br-") and ns.endswith(naming.branch_digits(n)) for ns in live_namespaces(cluster_api))

    new = f"release/{unique_pr()}"
    fake_gitlab.delete_branch(PROJECT, old)
    fake_gitlab.add_branch(PROJECT, new, "3" * 40)
    d.sync()
    readable = naming.stack_name(naming.branch_number(new), naming.branch_slug(new))
    assert {e["stack"] for e in d.listed().values()} == {readable}
    namespaces = live_namespaces(cluster_api)
    assert f"pr-{n}" not in namespaces and readable in namespaces
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{n}") and not db.role_exists(conn, f"pr_{n}")

    fake_gitlab.delete_branch(PROJECT, new)
    d.sync()
    assert d.listed() == {}
    assert readable not in live_namespaces(cluster_api)
