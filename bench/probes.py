"""What "ready" and "gone" mean, checked from outside, and the floor: the same objects without prenv or Pulumi.

Ready: every Deployment of the namespace available, the Ingress admitted (``status.loadBalancer`` published), and
the PR's role logs in to its database with the credentials the app gets (the ``DATABASE_URL`` of its Secret).
Gone: the namespace no longer exists, the database and role are dropped, and the stack is no longer in the backend.

The floor renders the objects prenv deployed for one PR (read back from the cluster, server fields stripped) into
another namespace with ``kubectl apply --server-side``, waits with ``kubectl wait``, and runs the same database SQL
(``prenv.db``): what any tool must do at least, so the ratio shows prenv's own overhead.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from components.environment import DATABASE_SECRET
from prenv import db
from prenv.cluster.bootstrap import wait_until
from prenv.gateway.backend import DiyBackend, FileStore

KUBECTL = "/usr/bin/kubectl"
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


class Probe:
    """Readiness and teardown checks against the cluster, PostgreSQL and the backend."""

    def __init__(self, api: client.ApiClient, admin_dsn: str, backend_dir: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.net = client.NetworkingV1Api(api)
        self.admin_dsn = admin_dsn
        self.backend = self.backend_of(backend_dir)

    @staticmethod
    def backend_of(backend_dir: Path) -> DiyBackend:
        """The project's stacks in a ``file://`` backend, read from its checkpoints."""
        return DiyBackend(FileStore(backend_dir), "prenv")

    # --- ready -----------------------------------------------------------------------------------------------

    def ready(self, namespace: str) -> bool:
        try:
            deployments = self.apps.list_namespaced_deployment(namespace).items
            ingresses = self.net.list_namespaced_ingress(namespace).items
        except ApiException:
            return False
        if not deployments or not ingresses:
            return False
        for d in deployments:
            want = d.spec.replicas or 0
            if (d.status.available_replicas or 0) < want or (d.status.observed_generation or 0) < d.metadata.generation:
                return False
        if not all(i.status.load_balancer and i.status.load_balancer.ingress for i in ingresses):
            return False
        return self.can_log_in(namespace)

    def database_url(self, namespace: str) -> str | None:
        try:
            secret = self.core.read_namespaced_secret(DATABASE_SECRET, namespace)
        except ApiException:
            return None
        raw = (secret.data or {}).get("DATABASE_URL")
        return base64.b64decode(raw).decode() if raw else None

    def can_log_in(self, namespace: str) -> bool:
        url = self.database_url(namespace)
        if url is None:
            return False
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT count(*) FROM products").fetchone()
        except psycopg.Error:
            return False
        return True

    # --- gone ------------------------------------------------------------------------------------------------

    def namespace_gone(self, namespace: str) -> bool:
        try:
            self.core.read_namespace(namespace)
        except ApiException as e:
            return bool(e.status == 404)
        return False

    def database_gone(self, name: str) -> bool:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            return not db.database_exists(conn, name) and not db.role_exists(conn, name)

    def stack_gone(self, pr: int) -> bool:
        return f"pr-{pr}" not in self.backend.stack_names()

    def gone(self, pr: int) -> bool:
        return self.stack_gone(pr) and self.database_gone(f"pr_{pr}") and self.namespace_gone(f"pr-{pr}")

    def deployed(self, pr: int) -> bool:
        state = self.backend.state(f"pr-{pr}")
        return state is not None and state.result == "succeeded"


# --- the floor -----------------------------------------------------------------------------------------------


def render(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The objects prenv made in ``namespace``, as apply-able manifests (server fields and status removed)."""
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    ser = api.sanitize_for_serialization
    objects: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", **ser(core.read_namespace(namespace))}]
    listings: list[tuple[str, str, Callable[[str], Any]]] = [
        ("v1", "ResourceQuota", core.list_namespaced_resource_quota),
        ("v1", "LimitRange", core.list_namespaced_limit_range),
        ("networking.k8s.io/v1", "NetworkPolicy", net.list_namespaced_network_policy),
        ("v1", "Secret", core.list_namespaced_secret),
        ("apps/v1", "Deployment", apps.list_namespaced_deployment),
        ("v1", "Service", core.list_namespaced_service),
        ("networking.k8s.io/v1", "Ingress", net.list_namespaced_ingress),
    ]
    for version, kind, list_fn in listings:
        for item in list_fn(namespace).items:
            if kind == "Secret" and item.type == "kubernetes.io/service-account-token":
                continue
            objects.append({"apiVersion": version, "kind": kind, **ser(item)})
    for obj in objects:
        obj.pop("status", None)
        meta = obj["metadata"]
        for key in _SERVER_FIELDS:
            meta.pop(key, None)
        meta.pop("finalizers", None)
        (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
        spec = obj.get("spec") or {}
        if obj["kind"] == "Service":
            for key in ("clusterIP", "clusterIPs"):
                spec.pop(key, None)
        if obj["kind"] == "Namespace":
            obj.pop("spec", None)
    return objects


def retarget(objects: list[dict[str, Any]], namespace: str, database_url: str) -> list[dict[str, Any]]:
    """The same manifests for another namespace and database."""
    out = copy.deepcopy(objects)
    for obj in out:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        else:
            meta["namespace"] = namespace
        if obj["kind"] == "Secret" and meta.get("name") == DATABASE_SECRET:
            obj.pop("data", None)
            obj["stringData"] = {"DATABASE_URL": database_url}
    return out


def floor_up(objects: list[dict[str, Any]], namespace: str, admin_dsn: str, probe: Probe, env: dict[str, str]) -> None:
    """The physical floor of one environment: same SQL, same objects applied, waited for, same readiness check."""
    name = namespace.replace("-", "_")
    password = "floor-" + name
    branch = db.create_branch(admin_dsn, name, password, template="app_seed")
    url = f"postgresql://{name}:{password}@{branch.host}:{branch.port}/{name}"
    apply_and_wait(retarget(objects, namespace, url), namespace, env)
    wait_until(f"floor namespace {namespace} ready", lambda: probe.ready(namespace), timeout=300)


def apply_and_wait(manifests: list[dict[str, Any]], namespace: str, env: dict[str, str]) -> None:
    """``kubectl apply --server-side`` of ``manifests``, then ``kubectl wait`` until every Deployment is Available."""
    # JSON, not YAML: kubectl's YAML 1.2 reader would take a sha such as "000…3e8" for a number.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": manifests}, f)
    try:
        kubectl(env, "apply", "--server-side", "--field-manager=floor", "-f", f.name)
        kubectl(env, "wait", "-n", namespace, "--for=condition=Available", "deployment", "--all", "--timeout=300s")
    finally:
        Path(f.name).unlink()


def floor_down(namespace: str, admin_dsn: str, probe: Probe, env: dict[str, str]) -> None:
    kubectl(env, "delete", "namespace", namespace, "--wait=true", "--timeout=300s")
    db.drop_branch(admin_dsn, namespace.replace("-", "_"))
    wait_until(f"floor namespace {namespace} gone", lambda: probe.namespace_gone(namespace), timeout=300)


def kubectl(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {args[0]} failed: {done.stderr.strip()[-500:]}")


def remove_floor(namespace: str, admin_dsn: str, env: dict[str, str]) -> None:
    """Best-effort cleanup of a floor environment left by an interrupted run."""
    with contextlib.suppress(RuntimeError, psycopg.Error):
        kubectl(env, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        db.drop_branch(admin_dsn, namespace.replace("-", "_"))
