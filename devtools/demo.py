"""``make demo``: the main job on embedded defaults, from a fresh clone, narrated step by step with timings.

Starts a throwaway PostgreSQL (with a seed database every PR branches from) and the embedded cluster, deploys the
shared stack, then runs the driver against a file source of three PRs and shows the environments; then pushes to
one PR, closes another, and shows the result. ``make demo-down`` removes everything it started.

TLS is as in production (``tls.mode: wildcard``): the cluster's CA signs ``*.<base domain>``, the shared stack holds
that certificate and every PR namespace gets a copy, which Traefik serves. The demo runs a copy of the project
(``.state/demo/project``) whose template differs from the shipped one only in ``tls`` and ``sharedStack``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state"
DEMO = STATE / "demo"
PROJECT = DEMO / "project"
SEED = "app_seed"
console = Console(width=None if sys.stdout.isatty() else 110)

PRS: list[dict[str, Any]] = [
    {
        "number": 101,
        "sha": "a1" * 20,
        "branch": "feature/checkout",
        "author": "ada",
        "title": "New checkout",
        "labels": ["preview"],
    },
    {
        "number": 102,
        "sha": "b2" * 20,
        "branch": "fix/cart-total",
        "author": "grace",
        "title": "Fix cart total",
        "labels": ["preview"],
    },
    {
        "number": 103,
        "sha": "c3" * 20,
        "branch": "feature/search",
        "author": "linus",
        "title": "Search page",
        "labels": ["preview"],
    },
]


@contextmanager
def step(text: str) -> Iterator[None]:
    console.print(f"[bold]→ {text}[/bold]")
    started = time.monotonic()
    yield
    console.print(f"  [green]done[/green] in {time.monotonic() - started:.1f}s")


def _postgres() -> Any:
    from devtools.localdb import LocalPostgres

    return LocalPostgres(STATE / "postgres")


def _cluster() -> Any:
    from prenv.cluster import EmbeddedCluster

    return EmbeddedCluster("prenv", STATE)


def up() -> None:
    from prenv import driver, settings

    total = time.monotonic()
    DEMO.mkdir(parents=True, exist_ok=True)
    with step("PostgreSQL: starting a throwaway server and seeding the template database"):
        pg = _postgres()
        pg.start()  # attaches to the server when a previous demo left it running
        _seed(pg.dsn)
    with step("Kubernetes: starting the embedded cluster (etcd, kube-apiserver, controllers, KWOK, Traefik)"):
        info = _cluster().up(progress=lambda msg, secs: console.print(f"  {msg} ({secs:.1f}s)"))
        console.print(f"  kubeconfig: {info.kubeconfig}")
    with step("TLS: the cluster's CA signs the wildcard certificate the shared stack will hold"):
        cert = _wildcard_project(_cluster())
        console.print(f"  certificate: {cert}\n  local CA:    {info.ca}")
    prs_file = DEMO / "prs.yaml"
    config_file = DEMO / "prenv.yaml"
    prs_file.write_text(yaml.safe_dump(PRS, sort_keys=False))
    config_file.write_text(
        yaml.safe_dump(
            {
                "project_dir": str(PROJECT),
                "source": {"type": "file", "file": {"path": str(prs_file)}},
                "filters": {"labels": ["preview"]},
                "state": {"backend": f"file://{STATE / 'pulumi'}"},
                "reconcile": {"parallelism": 2},
            }
        )
    )
    env = {"PRENV_DATABASE_ADMIN_DSN": pg.dsn, "KUBECONFIG": str(info.kubeconfig)}
    import os

    os.environ.update(env)
    s = settings.load(config_file)
    d = driver.build(s)
    with step("Pulumi: deploying the shared stack"):
        d.gateway.deploy_shared()
    with step("Driver: first sync of three PRs (prenv sync)"):
        result = d.reconciler.sync()
        _report(result)
    show(d)
    with step("A push to PR 102 and PR 103 closed; sync again"):
        PRS[1]["sha"] = "d4" * 20
        prs_file.write_text(yaml.safe_dump([p for p in PRS if p["number"] != 103], sort_keys=False))
        result = d.reconciler.sync()
        _report(result)
    show(d)
    console.print(f"[bold green]demo finished in {time.monotonic() - total:.0f}s[/bold green]")
    console.print(
        f"Try: KUBECONFIG={info.kubeconfig} kubectl get ns -l prenv.dev/managed-by=prenv\n"
        f"     .venv/bin/prenv list -c {config_file}\n"
        "Stop everything with: make demo-down"
    )


def _wildcard_project(cluster: Any) -> Path:
    """The demo's project: the shipped one in ``tls.mode: wildcard``, and the shared stack's config naming the
    certificate and key the cluster's CA made for the template's base domain. Returns the certificate's path."""
    PROJECT.mkdir(parents=True, exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, PROJECT / name)
    template = yaml.safe_load((ROOT / "Pulumi.preview.yaml").read_text())
    template["config"]["prenv:tls"] = {"mode": "wildcard"}
    template["config"]["prenv:sharedStack"] = "organization/prenv/shared"  # the DIY backend's name for it
    (PROJECT / "Pulumi.preview.yaml").write_text(yaml.safe_dump(template, sort_keys=False))
    pair = cluster.wildcard_certificate(template["config"]["prenv:baseDomain"])
    # Merged into what is there: pulumi keeps the stack's encryption salt in the same file.
    shared_file = PROJECT / "Pulumi.shared.yaml"
    shared = yaml.safe_load(shared_file.read_text()) if shared_file.exists() else {}
    shared.setdefault("config", {}).update(
        {"prenv:wildcardCertFile": str(pair.cert), "prenv:wildcardKeyFile": str(pair.key)}
    )
    shared_file.write_text(yaml.safe_dump(shared, sort_keys=False))
    return Path(pair.cert)


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (SEED,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SEED)))
    seed_dsn = dsn.rsplit("/", 1)[0] + f"/{SEED}"
    with psycopg.connect(seed_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric)")
        conn.execute("INSERT INTO products (name, price) VALUES ('teapot', 25), ('kettle', 40), ('cup', 8)")


def _report(result: Any) -> None:
    for o in result.outcomes:
        verdict = "[green]ok[/green]" if o.ok else f"[red]{o.skipped or o.error}[/red]"
        console.print(f"  PR {o.action.pr}: {o.action.kind.value} ({o.action.reason}) {verdict} {o.seconds:.1f}s")


def show(d: Any) -> None:
    from prenv.reconcile import status_of

    table = Table("PR", "URL", "sha", "status", "database")
    for s in sorted(d.gateway.list_stacks(), key=lambda s: s.pr):
        table.add_row(str(s.pr), s.url or "", (s.sha or "")[:7], status_of(s).value, f"pr_{s.pr}")
    console.print(table)


def down() -> None:
    with step("Stopping the embedded cluster"):
        _cluster().down()
    with step("Stopping PostgreSQL and removing the demo state"):
        pg = _postgres()
        pg.stop()
        pg.remove()
        for sub in ("pulumi", "demo"):
            shutil.rmtree(STATE / sub, ignore_errors=True)
        for empty in (STATE / "cluster", STATE):
            with contextlib.suppress(OSError):
                empty.rmdir()
        for f in ROOT.glob("Pulumi.pr-*.yaml"):
            f.unlink()
        (ROOT / "Pulumi.shared.yaml").unlink(missing_ok=True)


COMMANDS: dict[str, Callable[[], None]] = {"up": up, "down": down}

if __name__ == "__main__":
    from prenv.errors import PrenvError

    try:
        COMMANDS[sys.argv[1] if len(sys.argv) > 1 else "up"]()
    except PrenvError as e:
        console.print(f"[red]demo failed:[/red] {e}")
        sys.exit(2)
