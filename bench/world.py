"""The benchmark world: the real components a reviewer's environment is made of, started for one ``make bench`` run.

An embedded cluster of its own (``bench``, with enough fake nodes for 200 environments), a throwaway PostgreSQL with
the seed every PR branches from, the fake GitHub server the service talks to through PyGithub, a private copy of
the Pulumi project and a ``file://`` backend. Everything lives under one temporary directory and is removed at the
end; nothing of the developer's (``.state/``, the ``prenv`` cluster) is touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from devtools.localdb import LocalPostgres
from prenv.cluster import ClusterInfo, EmbeddedCluster, NodeSpec
from testsupport.github_server import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
SEED = "app_seed"
REPOSITORY = "acme/shop"
BASE_DOMAIN = "preview.bench"
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 (a throwaway key for a local benchmark)
GITHUB_TOKEN = "ghp_bench_token"  # noqa: S105 (the fake GitHub accepts any token)
# 200 environments of two pods each, with room to spare: the default two nodes hold 220 pods.
NODES = NodeSpec(count=4, cpu="64", memory="256Gi", pods=250)
CLUSTER_DESCRIPTION = f"KWOK ({NODES.count} fake nodes: pods simulated, not run)"
SEED_ROWS = ("teapot", "kettle")
SEED_DESCRIPTION = f"{len(SEED_ROWS)} rows"


@dataclass
class World:
    root: Path
    cluster: ClusterInfo
    postgres: LocalPostgres
    github: FakeGitHub
    project_dir: Path
    backend_url: str

    @property
    def backend_dir(self) -> Path:
        return Path(self.backend_url.removeprefix("file://"))

    def env(self) -> dict[str, str]:
        """The environment of every prenv and pulumi process of the benchmark."""
        from prenv.toolchain import pulumi_env

        return {
            **os.environ,
            **pulumi_env(),
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PRENV_DATABASE_ADMIN_DSN": self.postgres.dsn,
            "GITHUB_TOKEN": GITHUB_TOKEN,
            "PRENV_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

    def write_config(
        self, name: str, *, parallelism: int, workers: int, port: int = 8080, project_dir: Path | None = None
    ) -> Path:
        """A prenv.yaml for the GitHub source on the fake server (the ``prenv serve`` configuration), for the
        world's project or ``project_dir`` (another template on the same backend)."""
        path = self.root / f"{name}.yaml"
        doc: dict[str, Any] = {
            "project_dir": str(project_dir or self.project_dir),
            "source": {"type": "github", "github": {"repository": REPOSITORY, "base_url": self.github.base_url}},
            "filters": {"labels": ["preview"], "max_environments": 1000},
            "reconcile": {"parallelism": parallelism, "max_teardowns_per_cycle": 1000},
            "state": {"backend": self.backend_url},
            "serve": {"port": port, "workers": workers, "resync_seconds": 3600, "feedback": {"enabled": True}},
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


def _seed(pg: LocalPostgres) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (SEED,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SEED)))
    with psycopg.connect(pg.dsn_for(SEED), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO products (name) VALUES (%s)", [(name,) for name in SEED_ROWS])


def _project(dest: Path) -> Path:
    """The shipped project with the benchmark's base domain and seed."""
    dest.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dest / name)
    doc = yaml.safe_load((ROOT / "Pulumi.preview.yaml").read_text())
    doc["config"]["prenv:baseDomain"] = BASE_DOMAIN
    doc["config"]["prenv:database"] = {"enabled": True, "namePrefix": "pr_", "template": SEED}
    (dest / "Pulumi.preview.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


@contextmanager
def world(progress: Any = print) -> Iterator[World]:
    """Start every component; stop and remove all of them afterwards, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix="prenv-bench-"))
    root.chmod(0o755)  # the PostgreSQL server runs as the postgres OS user and must traverse it
    cluster = EmbeddedCluster(f"bench-{os.getpid()}", root / "state", nodes=NODES)
    pg = LocalPostgres(root / "postgres")
    github = FakeGitHub()
    try:
        progress("starting PostgreSQL and seeding the template database")
        pg.start()
        _seed(pg)
        progress("starting the embedded cluster")
        info = cluster.up(progress=lambda msg, secs: None)
        github.start()
        github.add_repo(REPOSITORY)
        backend = root / "pulumi-state"
        backend.mkdir()
        yield World(root, info, pg, github, _project(root / "project"), f"file://{backend}")
    finally:
        progress("stopping the benchmark's components")
        github.stop()
        cluster.down(progress=lambda msg, secs: None)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
