"""``make demo``: the main job on embedded defaults, from a fresh clone, narrated step by step with timings.

Starts the embedded cluster with a real node (containerd, kubelet, kube-proxy, CoreDNS; Traefik as the ingress
controller), a throwaway PostgreSQL that the node's pods reach on its bridge (with a seed database every PR
branches from), builds the example app's image (examples/app) and loads it for each PR, deploys the shared stack,
then runs the driver against a file source of three PRs. Each environment's page is fetched over HTTPS through
Traefik and shown, with a curl command that fetches it too; then one PR gets a push (its page shows the new sha)
and another closes. ``make demo-down`` removes everything it started.

TLS is as in production (``tls.mode: wildcard``): the cluster's CA signs ``*.<base domain>``, the shared stack holds
that certificate and every PR namespace gets a copy, which Traefik serves. The demo runs a copy of the project
(``.state/demo/project``) whose template differs from the shipped one only in ``tls``, ``sharedStack`` and the
database host the pods use (``devtools.realnode.write_project``).

The real node needs root (containerd, bridges, iptables). Not as root, the demo says so and runs on KWOK's
simulated nodes: the environments are created and listed, but no page answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from prenv.cluster.layout import default_state_dir

ROOT = Path(__file__).resolve().parents[1]
STATE = default_state_dir()  # $PRENV_STATE_DIR or <checkout>/.state
DEMO = STATE / "demo"
PROJECT = DEMO / "project"
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


BASE_DOMAIN = "preview.localtest.me"
ROWS = [("teapot", 25), ("kettle", 40), ("cup", 8)]


def _real() -> bool:
    """The real node needs root (containerd, bridges, iptables); the demo falls back to KWOK without it."""
    return os.geteuid() == 0


def _postgres() -> Any:
    from devtools import realnode
    from devtools.localdb import LocalPostgres

    cluster = _cluster()
    return LocalPostgres(STATE / "postgres", bridge=realnode.database_bridge(cluster) if _real() else None)


def _cluster() -> Any:
    from prenv.cluster import EmbeddedCluster

    return EmbeddedCluster("prenv", STATE, node_kinds="real" if _real() else "kwok")


def up() -> None:
    from devtools import realnode
    from prenv import driver, settings

    total = time.monotonic()
    DEMO.mkdir(parents=True, exist_ok=True)
    cluster = _cluster()
    if not _real():
        console.print(
            "[yellow]not root: the real node needs root, so pods are simulated by KWOK and no page "
            "answers (run as root for the full demo)[/yellow]"
        )
    nodes = "a real node: containerd, kubelet, kube-proxy, CoreDNS" if _real() else "KWOK's simulated nodes"
    with step(f"Kubernetes: the embedded cluster (etcd, kube-apiserver, controllers, Traefik; {nodes})"):
        info = cluster.up(progress=lambda msg, secs: console.print(f"  {msg} ({secs:.1f}s)"))
        console.print(f"  kubeconfig: {info.kubeconfig}")
    with step("PostgreSQL: a throwaway server the pods reach on the node's bridge, with the seed database"):
        pg = _postgres()
        pg.start()  # attaches to the server when a previous demo left it running
        realnode.seed(pg.dsn, ROWS)
    if _real():
        with step("Images: the example app (examples/app) built here and loaded into the node for each PR"):
            image = realnode.example_image(STATE)
            realnode.load_for_prs(cluster, image, [int(pr["number"]) for pr in PRS])
            console.print(f"  {image.ref} as prenv.local/example-app:pr-<n> (no registry: containerd imports it)")
    with step("TLS: the cluster's CA signs the wildcard certificate the shared stack will hold"):
        db_host = realnode.database_bridge(cluster).address if _real() else pg.host
        realnode.write_project(PROJECT, cluster, BASE_DOMAIN, db_host)
        console.print(f"  local CA: {info.ca}")
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
    (STATE / "pulumi").mkdir(exist_ok=True)
    os.environ.update({"PRENV_DATABASE_ADMIN_DSN": pg.dsn, "KUBECONFIG": str(info.kubeconfig)})
    d = driver.build(settings.load(config_file))
    with step("Pulumi: deploying the shared stack"):
        d.gateway.deploy_shared()
    with step("Driver: first sync of three PRs (prenv sync)"):
        _report(d.reconciler.sync())
    show(d)
    pages(info, [int(pr["number"]) for pr in PRS])
    with step("A push to PR 102 and PR 103 closed; sync again"):
        PRS[1]["sha"] = "d4" * 20
        prs_file.write_text(yaml.safe_dump([p for p in PRS if p["number"] != 103], sort_keys=False))
        _report(d.reconciler.sync())
    show(d)
    pages(info, [102], expect={102: PRS[1]["sha"]})
    console.print(f"[bold green]demo finished in {time.monotonic() - total:.0f}s[/bold green]")
    console.print(
        f"Try: KUBECONFIG={info.kubeconfig} kubectl get pods -A -l prenv.dev/managed-by=prenv\n"
        f"     .venv/bin/prenv list -c {config_file}\n"
        "Stop everything with: make demo-down"
    )


def pages(info: Any, prs: list[int], expect: dict[int, str] | None = None) -> None:
    """Fetch each PR's page through Traefik (HTTPS, the local CA) and show its first lines and a curl command."""
    from devtools import realnode

    if not _real():
        return
    for n in prs:
        host = f"web-{n}.{BASE_DOMAIN}"
        with step(f"PR {n}: https://{host}/ through Traefik"):
            page = realnode.wait_for_page(info, host, (expect or {}).get(n, f"Preview of PR {n}"))
            text = [ln for ln in _text_lines(page.body) if ln][:9]
            console.print("  " + "\n  ".join(text), markup=False, highlight=False)
            console.print(f"  {realnode.curl_line(info, host)}", markup=False, highlight=False, soft_wrap=True)


def _text_lines(html: str) -> list[str]:
    """The page's text, one line per element, without the markup (what a reader sees first)."""
    import re

    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", line)).strip() for line in html.splitlines()]


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
    with step("Stopping the embedded cluster (and its node: containers, mounts, bridge, iptables rules)"):
        _cluster().down()
    with step("Stopping PostgreSQL and removing the demo state"):
        pg = _postgres()
        pg.stop()
        pg.remove()
        for sub in ("pulumi", "demo", "images", "pulumi-sessions"):
            shutil.rmtree(STATE / sub, ignore_errors=True)
        for empty in (STATE / "cluster", STATE):
            with contextlib.suppress(OSError):
                empty.rmdir()


COMMANDS: dict[str, Callable[[], None]] = {"up": up, "down": down}

if __name__ == "__main__":
    from prenv.errors import PrenvError

    try:
        COMMANDS[sys.argv[1] if len(sys.argv) > 1 else "up"]()
    except PrenvError as e:
        console.print(f"[red]demo failed:[/red] {e}")
        sys.exit(2)
