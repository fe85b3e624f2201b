"""What the embedded cluster holds before anyone uses it, and how we know it is ready.

KWOK simulates kubelets, so the nodes are plain Node objects we create with realistic capacity; KWOK then keeps
them Ready and turns every pod scheduled onto them Running/Ready with an IP from the node's pod CIDR, which is
what gives Services their EndpointSlices. The ingress controller is Traefik, a host process (``traefik``); here
is its footprint in the API: the IngressClass (``nginx`` by default, the class the templates name, and the
cluster default so class-less Ingresses get it) whose controller is Traefik's ``traefik.io/ingress-controller``,
and the ``ingress-nginx`` namespace that the NetworkPolicies of preview environments admit traffic from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from prenv import procs
from prenv.errors import ClusterError

logger = logging.getLogger(__name__)

MANAGED_BY = {"app.kubernetes.io/managed-by": "prenv"}
INGRESS_NAMESPACE = "ingress-nginx"
# KWOK gives the pods of a fake node addresses from the node's podCIDR, 10.244.<index>.0/24: all inside this range,
# which no real node uses, and which a cluster with real nodes routes to a blackhole (prenv.cluster.node.routes).
FAKE_POD_RANGE = "10.244.0.0/16"

# Traefik's Kubernetes Ingress provider serves only IngressClasses naming this controller.
INGRESS_CONTROLLER = "traefik.io/ingress-controller"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The fake nodes: KWOK treats every node with the ``kwok.x-k8s.io/node: fake`` annotation as its own."""

    count: int = 2
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    prefix: str = "kwok-node"

    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}-{i}" for i in range(self.count))


def api_client(kubeconfig: Path) -> client.ApiClient:
    """A client for ``kubeconfig`` that fails fast instead of retrying connection errors (we poll ourselves)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


def node_manifest(name: str, index: int, spec: NodeSpec, kubelet_version: str) -> dict[str, Any]:
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods), "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
                **MANAGED_BY,
            },
        },
        # A pod CIDR per node gives pods distinct, realistic IPs.
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},  # in FAKE_POD_RANGE
        "status": {
            # Kept by KWOK's node-initialize stage (it fills in only missing addresses); pods get it as hostIP.
            "addresses": [
                {"type": "InternalIP", "address": f"10.240.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "osImage": "KWOK",
                "kernelVersion": "kwok",
                "containerRuntimeVersion": "kwok",
            },
            "phase": "Running",
        },
    }


def ingress_objects(ingress_class: str) -> tuple[dict[str, Any], dict[str, Any]]:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": INGRESS_NAMESPACE, "labels": {"app.kubernetes.io/name": "ingress-nginx", **MANAGED_BY}},
    }
    klass = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": ingress_class,
            "labels": MANAGED_BY,
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
        },
        "spec": {"controller": INGRESS_CONTROLLER},
    }
    return namespace, klass


def _create(what: str, create: Callable[[dict[str, Any]], object], body: dict[str, Any]) -> None:
    """Create an object; one that already exists (a restarted cluster) is fine."""
    try:
        create(body)
    except ApiException as e:
        if e.status != 409:
            raise ClusterError(f"creating {what} failed: HTTP {e.status} {e.reason}") from e


def create_objects(api: client.ApiClient, nodes: NodeSpec, ingress_class: str, kubelet_version: str) -> None:
    core = client.CoreV1Api(api)
    for index, name in enumerate(nodes.names()):
        _create(f"node {name}", core.create_node, node_manifest(name, index, nodes, kubelet_version))
    namespace, klass = ingress_objects(ingress_class)
    _create(f"namespace {INGRESS_NAMESPACE}", core.create_namespace, namespace)
    net = client.NetworkingV1Api(api)
    _create(f"ingressclass {ingress_class}", net.create_ingress_class, klass)
    # A cluster created before Traefik served it has a class naming another controller (spec.controller is
    # immutable): replace it, or Traefik would ignore every Ingress.
    existing = net.read_ingress_class(ingress_class)
    if existing.spec.controller != INGRESS_CONTROLLER:
        net.delete_ingress_class(ingress_class)
        _create(f"ingressclass {ingress_class}", net.create_ingress_class, klass)


def wait_until(what: str, check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> None:
    """Poll ``check`` until it is true; ClusterError after ``timeout`` seconds. API and connection errors count as
    false (the apiserver is still starting)."""
    procs.wait_until(
        what, check, timeout=timeout, interval=interval, tolerate=(ApiException, HTTPError, OSError), error=ClusterError
    )


def readyz(api: client.ApiClient) -> bool:
    """Whether the apiserver reports ready; a non-2xx answer raises ApiException (callers poll)."""
    body = api.call_api(
        "/readyz",
        "GET",
        auth_settings=["BearerToken"],
        response_type="str",
        _return_http_data_only=True,
        _request_timeout=5,
    )
    return bool(body == "ok")


_LIFECYCLE_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


def nodes_ready(api: client.ApiClient, names: tuple[str, ...]) -> bool:
    """Every node Ready *and* schedulable: admission taints a new node ``not-ready`` and only the node
    lifecycle controller (in kube-controller-manager, possibly still starting) removes the taint; until then
    pods stay Pending."""
    usable = set()
    for node in client.CoreV1Api(api).list_node(_request_timeout=5).items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        tainted = any(t.key in _LIFECYCLE_TAINTS for t in node.spec.taints or [])
        if ready and not tainted:
            usable.add(node.metadata.name)
    return set(names) <= usable


def default_service_account(api: client.ApiClient) -> bool:
    client.CoreV1Api(api).read_namespaced_service_account("default", "default", _request_timeout=5)
    return True
