"""Preview environments that really run: what the demo, the e2e tests and the benchmark share on the real node.

The embedded cluster's real node runs the example app (examples/app) for real: its image is built here and loaded
into the node's containerd under each PR's tag (there is no registry), PostgreSQL listens on the node's bridge so
that pods reach their database branch, and Traefik serves each PR's host over HTTPS with the wildcard certificate
the cluster's CA signed. :func:`fetch` asks Traefik for a page exactly as a browser would (SNI, the CA's trust).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from psycopg import sql

from devtools.images import EXAMPLE_APP_REPOSITORY, build_example_app
from devtools.localdb import Bridge, LocalPostgres
from prenv.cluster import ClusterInfo, EmbeddedCluster
from prenv.cluster.images import BuiltImage, read_image
from prenv.errors import ClusterError

ROOT = Path(__file__).resolve().parents[1]
SEED = "app_seed"
SHARED_STACK = "organization/prenv/shared"  # the shared stack of a DIY backend, as a StackReference names it
# One real node per machine (kube-proxy's and the kubelet's iptables chains are machine-wide): whoever starts one
# holds this lock: the real-node tests (tests/fixtures/node.py) and the real-node benchmark.
REAL_NODE_LOCK = Path("/tmp/prenv-real-node-tests.lock")  # noqa: S108 (machine-wide on purpose)
_NODE_PROCESSES = ("kubelet", "kube-proxy")


def running_node_processes() -> list[str]:
    """The kubelet and kube-proxy processes running on this machine (``"<pid> <name>"``), whoever started them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        if Path(argv0).name in _NODE_PROCESSES:
            found.append(f"{entry.name} {Path(argv0).name}")
    return sorted(found, key=lambda s: int(s.split()[0]))


@contextlib.contextmanager
def sole_real_node(who: str) -> Iterator[None]:
    """Hold the machine-wide real-node lock for ``who`` without waiting for it.

    Raises ClusterError, saying what to stop, when another holder has the lock (a test, a benchmark) or a kubelet
    or kube-proxy already runs on the machine (e.g. ``make demo``, which does not take the lock)."""
    with REAL_NODE_LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterError(
                f"{who} needs the machine's only real node, but another process holds {REAL_NODE_LOCK} "
                "(a real-node test or benchmark); wait for it to finish"
            ) from None
        try:
            running = running_node_processes()
            if running:
                raise ClusterError(
                    f"{who} needs the machine's only real node, but one already runs ({', '.join(running)}): "
                    "stop it first (`make demo-down`, or `prenv cluster down --name <cluster>`)"
                )
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def database_bridge(cluster: EmbeddedCluster) -> Bridge:
    """Where pods of the cluster's real node reach the host's PostgreSQL: the node's bridge address, from its subnet."""
    network = cluster.node_network
    return Bridge(address=network.gateway, network=network.subnet)


def example_image(state_dir: Path) -> BuiltImage:
    """The example app's image archive under ``<state_dir>/images``: built once, reused while its sources match."""
    from devtools.images import images_dir, source_version

    archive = images_dir(state_dir) / "example-app.tar"
    stamp = archive.with_suffix(".source")
    if archive.exists() and stamp.exists() and stamp.read_text() == source_version():
        return read_image(archive)
    image = build_example_app(state_dir)
    stamp.write_text(source_version())
    return image


def load_for_prs(cluster: EmbeddedCluster, image: BuiltImage, prs: list[int], tag_prefix: str = "pr-") -> None:
    """Load the image into the node tagged for each PR (``prenv.local/example-app:pr-<n>``), as CI would push it."""
    cluster.load_image(image, tuple(f"{EXAMPLE_APP_REPOSITORY}:{tag_prefix}{n}" for n in prs))


def seed(dsn: str, rows: list[tuple[str, int]], name: str = SEED) -> None:
    """The seed database every PR branches from: a ``products`` table with ``rows``; nothing if it exists."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO products (name, price) VALUES (%s, %s)", rows)


def write_project(dest: Path, cluster: EmbeddedCluster, base_domain: str, db_host: str, **template: Any) -> Path:
    """A copy of the project whose template is the shipped one in ``tls.mode: wildcard`` for ``base_domain``, with
    the database reached at ``db_host`` (the node's bridge) and ``template`` keys replaced; the shared stack's
    config names the wildcard certificate and key the cluster's CA signed (merged into an existing file, which
    holds the stack's encryption salt)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, dest / name)
    doc = yaml.safe_load((ROOT / "Pulumi.preview.yaml").read_text())
    config = doc["config"]
    config["prenv:baseDomain"] = base_domain
    config["prenv:tls"] = {"mode": "wildcard"}
    config["prenv:sharedStack"] = SHARED_STACK
    config["prenv:database"] = {**config["prenv:database"], "template": SEED, "appHost": db_host}
    config.update({f"prenv:{k}": v for k, v in template.items()})
    (dest / "Pulumi.preview.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    pair = cluster.wildcard_certificate(base_domain)
    shared_file = dest / "Pulumi.shared.yaml"
    shared = yaml.safe_load(shared_file.read_text()) if shared_file.exists() else {}
    shared.setdefault("config", {}).update(
        {"prenv:wildcardCertFile": str(pair.cert), "prenv:wildcardKeyFile": str(pair.key)}
    )
    shared_file.write_text(yaml.safe_dump(shared, sort_keys=False))
    return dest


@dataclass(frozen=True)
class Page:
    status: int
    body: str


def fetch(info: ClusterInfo, host: str, path: str = "/", timeout: float = 10.0) -> Page:
    """GET ``https://<host><path>`` through the cluster's Traefik, verifying the chain and the name against the
    cluster's CA only (as a browser trusting that CA would); the TCP connection goes to Traefik's local port."""
    context = ssl.create_default_context(cafile=str(info.ca))
    with httpx.Client(verify=context, timeout=timeout, trust_env=False) as client:
        response = client.get(
            f"https://127.0.0.1:{info.ingress.https}{path}",
            headers={"Host": host, "Cache-Control": "no-store"},
            extensions={"sni_hostname": host},
        )
    return Page(response.status_code, response.text)


def post(
    info: ClusterInfo, host: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 30.0
) -> httpx.Response:
    """POST ``body`` to ``https://<host><path>`` through the cluster's Traefik, as GitHub would deliver a webhook
    (SNI, the chain verified against the cluster's CA only)."""
    context = ssl.create_default_context(cafile=str(info.ca))
    with httpx.Client(verify=context, timeout=timeout, trust_env=False) as client:
        return client.post(
            f"https://127.0.0.1:{info.ingress.https}{path}",
            content=body,
            headers={**headers, "Host": host},
            extensions={"sni_hostname": host},
        )


def wait_for_page(info: ClusterInfo, host: str, expect: str, timeout: float = 120.0, interval: float = 0.5) -> Page:
    """Fetch ``host``'s page until it answers 200 with ``expect`` in its body (a rollout finishing, Traefik picking
    up new endpoints); raises ClusterError with the last answer when it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            page = fetch(info, host)
            if page.status == 200 and expect in page.body:
                return page
            last = f"HTTP {page.status}: {page.body[:300]!r}"
        except (httpx.HTTPError, ssl.SSLError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise ClusterError(f"https://{host}/ did not show {expect!r} within {timeout:.0f}s ({last})")
        time.sleep(interval)


def curl_line(info: ClusterInfo, host: str) -> str:
    """A curl command that fetches ``host``'s page through the cluster's Traefik and trusts only its CA."""
    port = info.ingress.https
    return f"curl --cacert {info.ca} --resolve {host}:{port}:127.0.0.1 https://{host}:{port}/"


def start_postgres(data_dir: Path, cluster: EmbeddedCluster) -> LocalPostgres:
    """A local PostgreSQL that the cluster's pods reach on the node's bridge (start the cluster first: the bridge
    address must exist)."""
    pg = LocalPostgres(data_dir, bridge=database_bridge(cluster))
    pg.start()
    return pg
