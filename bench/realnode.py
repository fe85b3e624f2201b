"""Time to ready on the real node: from the webhook to the PR's HTTPS page answering 200 with its sha, through Traefik.

The world is the one the demo and the e2e tests use (devtools/realnode.py): an embedded cluster started with
``node_kinds="real"`` (containerd, kubelet, kube-proxy, CoreDNS, Traefik with the local CA's wildcard certificate)
in a fresh state dir, a PostgreSQL the pods reach on the node's bridge, the seed every PR branches from, the
example app's image (examples/app) loaded into the node under each PR's tag as CI would push it, the shipped
template in ``tls.mode: wildcard`` with the shared stack deployed, the fake GitHub and a real ``prenv serve``.

Each run: PR ``n`` with a fresh sha appears on the fake GitHub, its signed ``labeled`` webhook is posted; the clock
stops when ``https://web-<n>.<base domain>/`` — fetched through Traefik's local port with SNI, verified against
the cluster's CA only — answers 200 with ``<code id="sha"><sha></code>``: the pods are Ready, the database branch
is reachable (the page lists its rows), the Ingress routes. Also recorded: when the PR comment says ready. Then
the floor in the same run: the objects prenv made (read back, server fields stripped) applied to another namespace
with ``kubectl apply --server-side`` under another host of the same wildcard, ``kubectl wait`` for the
Deployments available, the same SQL (``prenv.db.create_branch``), and the same HTTPS fetch until the page answers.
Then the PR is closed (teardown timed until namespace, database, role and stack are gone) and the floor removed.

Both ways of deploying the example app are measured in the same world, one after the other, each with its own
template and its own ``prenv serve``: the built-in shape (the shipped ``prenv:services``: web and worker), then the
example app's Helm chart (``prenv:app.kind: helm``, examples/app/chart), each against its own floor by the same
method. The chart's median next to the built-in one is issue 14's target: at most 1.5x.

Also reported: ``cluster up`` with the real node (fresh state dir, warm toolchain) and the cluster's RSS
(``EmbeddedCluster.rss_bytes()``: its processes, without the pods) after ``up`` and after the runs.

Only one real node may run on a machine: this benchmark takes the machine-wide lock and refuses to start when it
is held or a kubelet or kube-proxy already runs (``make demo``), rather than wait or disturb it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException

from bench import probes
from bench.conditions import Context, summarise
from bench.lifecycle import event, says
from bench.serve import ServeProcess
from bench.world import REPOSITORY, WEBHOOK_SECRET, World
from devtools import realnode
from prenv import db
from prenv.cluster import EmbeddedCluster
from prenv.cluster.bootstrap import api_client, wait_until
from prenv.cluster.images import BuiltImage
from prenv.cluster.layout import default_state_dir
from prenv.cluster.node import teardown
from prenv.cluster.node.layout import NodeNetwork
from prenv.errors import ClusterError
from prenv.procs import free_port
from testsupport.github_server import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.5
BASE_DOMAIN = "preview.bench"
ROWS = [("teapot", 25), ("kettle", 40)]
SEED_DESCRIPTION = f"{len(ROWS)} rows"
CLUSTER_DESCRIPTION = "real node (containerd, kubelet, kube-proxy, CoreDNS, Traefik)"
# A network of its own, so that teardown is checked against exactly what this benchmark made.
NETWORK = NodeNetwork(name="prenv-bench", bridge="pbench0", subnet="10.253.0.0/24")


@dataclass
class RealBench:
    world: World
    cluster: EmbeddedCluster
    db_host: str
    image: BuiltImage
    cluster_up_s: float
    rss_after_up: int
    up_conditions: dict[str, Any]
    leftovers_after_down: list[str] = field(default_factory=list)  # filled in once the world is down


def host(pr: int, prefix: str = "web-") -> str:
    return f"{prefix}{pr}.{BASE_DOMAIN}"


def page_shows(w: World, hostname: str, sha: str) -> bool:
    try:
        page = realnode.fetch(w.cluster, hostname, timeout=5)
    except (httpx.HTTPError, ssl.SSLError, OSError):  # refused, TLS not served yet: not ready
        return False
    return page.status == 200 and f'<code id="sha">{sha}</code>' in page.body


def preflight() -> str | None:
    """Why the real-node benchmark cannot run here now (not root, the real-node lock held, a node running), or
    None. Checked before a long ``make bench`` starts, so it does not fail after half an hour."""
    if os.geteuid() != 0:
        return "the real node needs root (containerd, bridges, iptables); run as root or leave out realnode"
    try:
        with realnode.sole_real_node("python -m bench realnode"):
            return None
    except ClusterError as e:
        return str(e)


class Milestones:
    """When each stage was first seen, in seconds since ``t0`` (polled beside the page, so nothing extra waits)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.at: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        self.at.setdefault(stage, time.perf_counter() - self.t0)


def deployments_available(apps: Any, namespace: str) -> bool:
    try:
        items = apps.list_namespaced_deployment(namespace).items
    except ApiException:
        return False
    return bool(items) and all(
        (d.status.available_replicas or 0) >= (d.spec.replicas or 0)
        and (d.status.observed_generation or 0) >= d.metadata.generation
        for d in items
    )


def prenv_stages(w: World, probe: probes.Probe, n: int, sha: str, m: Milestones) -> bool:
    """One poll of a PR's way to ready: its namespace exists, its Deployments are available, its page answers."""
    ns = f"pr-{n}"
    if "namespace" not in m.at and not probe.namespace_gone(ns):
        m.mark("namespace")
    if "namespace" in m.at and "available" not in m.at and deployments_available(probe.apps, ns):
        m.mark("available")
    if page_shows(w, host(n), sha):
        m.mark("page")
        return True
    return False


@contextmanager
def real_world(ctx: Context, progress: Any = print) -> Iterator[RealBench]:
    """The real-node world, under the machine-wide real-node lock; everything stopped and checked afterwards."""
    with realnode.sole_real_node("python -m bench realnode"):
        root = Path(tempfile.mkdtemp(prefix="prenv-bench-rn-"))  # short: containerd's socket path ≤ 107 bytes
        root.chmod(0o755)  # the PostgreSQL server runs as the postgres OS user and must traverse it
        cluster = EmbeddedCluster("bench-rn", root / "state", node_kinds="real", node_network=NETWORK)
        github = FakeGitHub()
        pg = None
        try:
            progress("starting the embedded cluster with a real node (timed: cluster up)")
            up_conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed="none", parallelism=None, samples=1)
            t0 = time.perf_counter()
            info = cluster.up(progress=lambda msg, secs: None)
            up_s = time.perf_counter() - t0
            rss = cluster.rss_bytes()
            up_row = ctx.end(up_conditions)
            progress(f"  cluster up {up_s:.1f}s, RSS {rss / 2**20:.0f} MiB")
            pg = realnode.start_postgres(root / "postgres", cluster)
            realnode.seed(pg.dsn, ROWS)
            progress("example app image (built once under .state/images, reused while its sources match)")
            image = realnode.example_image(default_state_dir())
            db_host = realnode.database_bridge(cluster).address
            project = realnode.write_project(root / "project", cluster, BASE_DOMAIN, db_host)
            backend = root / "pulumi-state"
            backend.mkdir()
            github.start()
            github.add_repo(REPOSITORY)
            w = World(root, info, pg, github, project, f"file://{backend}")
            progress("deploying the shared stack (wildcard certificate)")
            from prenv.gateway import gateway_for
            from prenv.toolchain import cache_dir

            gateway_for(project, w.backend_url, w.env(), pulumi_root=cache_dir()).deploy_shared()
            bench = RealBench(w, cluster, db_host, image, up_s, rss, up_row)
            yield bench
        finally:
            progress("stopping the real-node world")
            github.stop()
            if pg is not None:
                pg.remove()
            cluster.down(progress=lambda msg, secs: None)
            shutil.rmtree(root, ignore_errors=True)
        # Still under the lock: no other node can have started since ours went down.
        bench.leftovers_after_down = leftovers()


def leftovers() -> list[str]:
    """What the world left on the machine: its bridge, iptables rules naming its network, node processes."""
    left = []
    if teardown.link_exists(NETWORK.bridge):
        left.append(f"bridge {NETWORK.bridge}")
    left += teardown.network_rules(NETWORK.name)
    left += [f"process {p}" for p in realnode.running_node_processes()]
    return left


def floor_up(
    objects: list[dict[str, Any]], n: int, rb: RealBench, env: dict[str, str], sha: str, m: Milestones
) -> None:
    """The same manifests under another namespace and host, the same SQL, ``kubectl wait``, the same fetch."""
    namespace = f"floor-{n}"
    name = namespace.replace("-", "_")
    password = "floor-" + secrets.token_hex(8)
    db.create_branch(rb.world.postgres.dsn, name, password, template=realnode.SEED)
    port = db.server_of(rb.world.postgres.dsn)[1]
    url = f"postgresql://{name}:{password}@{rb.db_host}:{port}/{name}"
    floor_host = host(n, prefix="floor-")
    manifests = probes.retarget(objects, namespace, url)
    for obj in manifests:
        if obj["kind"] == "Ingress":
            spec = obj["spec"]
            for rule in spec.get("rules") or []:
                rule["host"] = floor_host
            for tls in spec.get("tls") or []:
                tls["hosts"] = [floor_host]
    m.mark("database")
    probes.apply_and_wait(manifests, namespace, env)
    m.mark("available")
    wait_until(f"{floor_host} serving", partial(page_shows, rb.world, floor_host, sha), timeout=300, interval=0.2)
    m.mark("page")


def _stages(marks: list[Milestones]) -> dict[str, float]:
    names = sorted({k for m in marks for k in m.at}, key=lambda k: statistics.median(m.at.get(k, 0) for m in marks))
    return {f"{k}_median_s": round(statistics.median(m.at[k] for m in marks if k in m.at), 2) for k in names}


PARALLELISM = 2
HELM_TARGET_RATIO = 1.5  # issue 14: the chart path may not cost more than 1.5x the built-in shape
# The example app's Helm chart (examples/app/chart) as a team would point prenv:app at it; the same values as the
# e2e test (tests/e2e/test_real_node.py), so the page shows this PR's sha and its database branch's rows.
HELM_APP: dict[str, Any] = {
    "kind": "helm",
    "chart": str(ROOT / "examples" / "app" / "chart"),
    "service": "web",
    "values": {
        "image": {"repository": "{imageRepository}", "tag": "{imageTag}"},
        "pr": "{pr}",
        "sha": "{sha}",
        "url": "{url}",
        "databaseSecret": "{databaseSecret}",
    },
}
HELM_PR_OFFSET = 1000  # the chart's PRs are numbered apart from the built-in shape's: 8000… next to 7000…


@dataclass(frozen=True)
class Shape:
    """One way of deploying the example app, measured with its own template and its own ``prenv serve``."""

    key: str  # "services" (the built-in shape) or "helm"
    project_dir: Path


def measure(rb: RealBench, ctx: Context, shape: Shape, prs: list[int], progress: Any = print) -> dict[str, Any]:
    """Time to ready and teardown of ``prs``, one after the other, for one shape: a ``prenv serve`` of its own on
    ``shape.project_dir`` (same backend, same shared stack), the floor of each run from the objects it made."""
    runs = len(prs)
    conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=PARALLELISM, samples=runs)
    w = rb.world
    env = w.env()
    api = api_client(w.cluster.kubeconfig)
    probe = probes.Probe(api, w.postgres.dsn, w.backend_dir)
    realnode.load_for_prs(rb.cluster, rb.image, prs)  # as CI pushes the image before the webhook
    port = free_port()
    name = f"serve-realnode-{shape.key}"
    config = w.write_config(
        name, parallelism=PARALLELISM, workers=PARALLELISM, port=port, project_dir=shape.project_dir
    )
    service = ServeProcess(config, env, port, w.root / f"{name}.log", WEBHOOK_SECRET)
    ready, announced, floor_ready, down, floor_down = [], [], [], [], []
    prenv_marks: list[Milestones] = []
    floor_marks: list[Milestones] = []
    repo = w.github.repo(REPOSITORY)
    try:
        service.start()
        for i, n in enumerate(prs):
            sha = secrets.token_hex(20)
            w.github.add_pull(REPOSITORY, n, labels=["preview"], sha=sha)
            payload = event("labeled", n)
            payload["pull_request"]["head"]["sha"] = sha
            t0 = time.perf_counter()
            status = service.webhook("pull_request", payload)
            if status != 202:
                raise RuntimeError(f"webhook answered {status}")
            marks = Milestones(t0)
            wait_until(
                f"https://{host(n)} serving", partial(prenv_stages, w, probe, n, sha, marks), timeout=600, interval=0.2
            )
            ready.append(time.perf_counter() - t0)
            prenv_marks.append(marks)
            wait_until(f"PR {n} comment saying ready", partial(says, repo, n, "ready"), timeout=120)
            announced.append(time.perf_counter() - t0)
            # Read back every run: the Deployments carry this PR's number, sha and image tag.
            objects = probes.render(api, f"pr-{n}")

            t0 = time.perf_counter()
            marks = Milestones(t0)
            floor_up(objects, n, rb, env, sha, marks)
            floor_ready.append(time.perf_counter() - t0)
            floor_marks.append(marks)

            w.github.close_pull(REPOSITORY, n)
            t0 = time.perf_counter()
            service.webhook("pull_request", event("closed", n, label=None))
            wait_until(f"PR {n} torn down", partial(probe.gone, n), timeout=600)
            down.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            probes.floor_down(f"floor-{n}", w.postgres.dsn, probe, env)
            floor_down.append(time.perf_counter() - t0)
            progress(
                f"  {shape.key} run {i + 1}/{runs}: page {ready[-1]:.1f}s (floor {floor_ready[-1]:.1f}s), "
                f"teardown {down[-1]:.1f}s (floor {floor_down[-1]:.1f}s)"
            )
    finally:
        service.stop()
        api.close()
    r, f = summarise(ready), summarise(floor_ready)
    td, ftd = summarise(down), summarise(floor_down)
    return {
        "conditions": ctx.end(conditions),
        "time_to_ready": {
            **r,
            "announced": summarise(announced),
            "floor": f,
            "ratio": round(r["median_s"] / f["median_s"], 2),
            "target_ratio": TARGET_RATIO,
            "samples_s": [round(x, 2) for x in ready],
            "floor_samples_s": [round(x, 2) for x in floor_ready],
            # Where the time goes (medians since the webhook / the floor's start): prenv's namespace appears,
            # Deployments available, page; the floor's database branch made, Deployments available, page.
            "stages": {"prenv": _stages(prenv_marks), "floor": _stages(floor_marks)},
        },
        "teardown": {
            **td,
            "floor": ftd,
            "ratio": round(td["median_s"] / ftd["median_s"], 2),
            "samples_s": [round(x, 2) for x in down],
        },
    }


def run(rb: RealBench, ctx: Context, runs: int = 10, first_pr: int = 7000, progress: Any = print) -> dict[str, Any]:
    """The built-in shape, then the example app's Helm chart, in the same world, one after the other.

    The built-in shape's figures stay where they always were (``time_to_ready``, ``teardown``, ``conditions``);
    the chart's are under ``helm``, and ``helm_vs_builtin`` compares the two medians against the 1.5x target."""
    w = rb.world
    builtin = measure(rb, ctx, Shape("services", w.project_dir), list(range(first_pr, first_pr + runs)), progress)
    # The same template with prenv:app set to the chart, on the same backend (the shared stack is deployed once).
    chart_project = realnode.write_project(w.root / "project-helm", rb.cluster, BASE_DOMAIN, rb.db_host, app=HELM_APP)
    helm_first = first_pr + HELM_PR_OFFSET
    progress("  the same runs with the example app's Helm chart (prenv:app.kind helm)")
    helm = measure(rb, ctx, Shape("helm", chart_project), list(range(helm_first, helm_first + runs)), progress)
    rss_after = rb.cluster.rss_bytes()
    b, h = builtin["time_to_ready"], helm["time_to_ready"]
    return {
        "runs": runs,
        **builtin,
        "cluster_up_s": round(rb.cluster_up_s, 1),
        "cluster_rss_mib": {"after_up": round(rb.rss_after_up / 2**20), "after_runs": round(rss_after / 2**20)},
        "cluster_up_conditions": rb.up_conditions,
        "helm": {"app": "examples/app/chart (prenv:app.kind helm)", **helm},
        "helm_vs_builtin": {
            "ratio": round(h["median_s"] / b["median_s"], 2),
            "target_ratio": HELM_TARGET_RATIO,
            # The same ratio for the floors: how much of the difference is the objects themselves, not prenv.
            "floor_ratio": round(h["floor"]["median_s"] / b["floor"]["median_s"], 2),
        },
    }
