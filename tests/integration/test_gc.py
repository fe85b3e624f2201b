"""`prenv gc` against the embedded cluster and PostgreSQL: what lost its stack is found, and removed with --apply."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db
from prenv.gateway.diy import DiyGateway
from prenv.model import DesiredEnvironment, PullRequest
from tests.fixtures.preview import unique_pr

pytestmark = pytest.mark.integration

PRENV = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "prenv")


def test_gc_finds_namespaces_databases_and_roles_without_a_stack_and_removes_them(
    tmp_path: Path,
    gateway: DiyGateway,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    kept, orphan = unique_pr(), unique_pr()
    prs = tmp_path / "prs.yaml"
    prs.write_text(yaml.safe_dump([{"number": kept, "sha": "a" * 40, "branch": "b", "author": "a", "title": "t"}]))
    config = tmp_path / "prenv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "project_dir": str(project_dir),
                "source": {"type": "file", "file": {"path": str(prs)}},
                "state": {"backend": backend_url},
            }
        )
    )
    gateway.up(DesiredEnvironment(PullRequest(kept, "a" * 40, "b", "main", "a", "t"), "h"))
    # What a crash after the cluster and database work, but before the state was saved, would leave behind:
    core = client.CoreV1Api(cluster_api)
    core.create_namespace(
        {"metadata": {"name": f"pr-{orphan}", "labels": {"prenv.dev/managed-by": "prenv", "prenv.dev/pr": str(orphan)}}}
    )
    db.create_branch(postgres.dsn, f"pr_{orphan}", "pw")

    def gc(*args: str) -> dict[str, list[object]]:
        done = subprocess.run(
            [PRENV, "gc", "--json", "-c", str(config), *args],
            env=preview_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    found = gc()
    assert f"pr-{orphan}" in found["namespaces"]
    assert f"pr-{kept}" not in found["namespaces"]
    assert f"pr_{orphan}" in found["databases"]
    assert f"pr_{orphan}" in found["roles"]
    assert f"pr_{kept}" not in found["databases"]
    assert found["removed"] == []

    removed = gc("--apply")
    assert f"namespace pr-{orphan} deleted" in removed["removed"]
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{orphan}")
        assert db.database_exists(conn, f"pr_{kept}")
    live = [n.metadata.name for n in core.list_namespace().items if n.status.phase != "Terminating"]
    assert f"pr-{orphan}" not in live
    assert f"pr-{kept}" in live
    gateway.destroy(kept)
