"""The embedded cluster behaves like the clusters preview environments are deployed to.

Each test checks one thing the stacks rely on: rollouts finish, Services get endpoints, admission enforces
quotas and limit defaults, namespace deletion cascades, Ingresses get a load-balancer status from Traefik.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from prenv.cluster import ClusterInfo, EmbeddedCluster

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def kubectl(info: ClusterInfo, *args: str, stdin: str | None = None, check: bool = True) -> str:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(info.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout


def apply(info: ClusterInfo, namespace: str, *docs: dict[str, Any]) -> None:
    kubectl(info, "-n", namespace, "apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))


def eventually(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s: {what}")
        time.sleep(0.2)


def deployment(name: str, replicas: int = 2, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}], **container}
                    ]
                },
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]},
    }


def test_up_on_a_running_cluster_reports_it_and_changes_nothing(cluster: ClusterInfo) -> None:
    embedded = EmbeddedCluster(cluster.name)
    before = embedded.pids()
    steps: list[str] = []
    info = embedded.up(progress=lambda step, _: steps.append(step))
    assert info == cluster
    assert steps == [f"cluster {cluster.name} is already running"]
    assert embedded.pids() == before
    assert set(before) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
        "traefik",
    }


def test_nodes_are_ready_with_realistic_allocatable_resources(
    cluster_api: client.ApiClient, cluster: ClusterInfo
) -> None:
    nodes = client.CoreV1Api(cluster_api).list_node().items
    assert sorted(n.metadata.name for n in nodes) == sorted(cluster.nodes)
    for node in nodes:
        assert node.status.allocatable["cpu"] == "8"
        assert node.status.allocatable["memory"] == "32Gi"
        assert node.status.allocatable["pods"] == "110"
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert not node.spec.taints
        assert {a.type for a in node.status.addresses} == {"InternalIP", "Hostname"}


def test_a_deployment_becomes_available_and_its_service_gets_endpoint_slices(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    apply(cluster, cluster_namespace, deployment("web"), service("web"))
    kubectl(cluster, "-n", cluster_namespace, "rollout", "status", "deployment/web", "--timeout=60s")

    status = client.AppsV1Api(cluster_api).read_namespaced_deployment("web", cluster_namespace).status
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"
    pods = client.CoreV1Api(cluster_api).list_namespaced_pod(cluster_namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.status.phase == "Running" and p.status.pod_ip and p.status.host_ip for p in pods)
    assert {p.spec.node_name for p in pods} <= set(cluster.nodes)

    def ready_addresses() -> set[str]:
        # Raw JSON: a slice made before its pods are ready has "endpoints": null, which the client's typed model
        # refuses to deserialize ("Invalid value for `endpoints`, must not be `None`").
        response = client.DiscoveryV1Api(cluster_api).list_namespaced_endpoint_slice(
            cluster_namespace, label_selector="kubernetes.io/service-name=web", _preload_content=False
        )
        slices = json.loads(response.data)["items"]
        return {
            a
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for a in e.get("addresses") or []
        }

    pod_ips = {p.status.pod_ip for p in pods}
    addresses = eventually("EndpointSlices list both pods as ready", lambda: ready_addresses() == pod_ips and pod_ips)
    # pulumi-kubernetes' Service and Ingress awaits read the (legacy) Endpoints object.
    core = client.CoreV1Api(cluster_api)

    def endpoint_ips() -> set[str]:
        subsets = core.read_namespaced_endpoints("web", cluster_namespace).subsets or []
        return {a.ip for s in subsets for a in s.addresses or []}

    eventually("the Endpoints object lists both pods", lambda: endpoint_ips() == addresses)


def test_a_resource_quota_rejects_a_pod_that_would_exceed_it(
    cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    core = client.CoreV1Api(cluster_api)
    core.create_namespaced_resource_quota(
        cluster_namespace,
        {"metadata": {"name": "quota"}, "spec": {"hard": {"requests.cpu": "1", "pods": "5"}}},
    )
    eventually(
        "the quota controller computed the quota's usage",
        lambda: core.read_namespaced_resource_quota("quota", cluster_namespace).status.used,
    )
    pod = {
        "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "2"}}}]},
    }
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(cluster_namespace, pod)
    assert rejected.value.status == 403
    assert "exceeded quota" in str(rejected.value.body)


def test_a_limit_range_gives_defaults_to_a_pod_with_no_resources(
    cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    core = client.CoreV1Api(cluster_api)
    core.create_namespaced_limit_range(
        cluster_namespace,
        {
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "256Mi"},
                        "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    }
                ]
            },
        },
    )
    pod = core.create_namespaced_pod(
        cluster_namespace, {"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    )
    resources = pod.spec.containers[0].resources
    assert resources.limits == {"cpu": "500m", "memory": "256Mi"}
    assert resources.requests == {"cpu": "100m", "memory": "128Mi"}


def test_namespace_lifecycle_rejects_objects_in_a_missing_namespace(cluster_api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as rejected:
        client.CoreV1Api(cluster_api).create_namespaced_config_map("does-not-exist", {"metadata": {"name": "orphan"}})
    assert rejected.value.status == 404


def test_the_cluster_has_cluster_ips_for_more_than_a_slash_24_of_services(
    cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    core = client.CoreV1Api(cluster_api)
    spec = {"selector": {"app": "none"}, "ports": [{"port": 80}]}
    ips = {
        core.create_namespaced_service(cluster_namespace, {"metadata": {"name": f"s{i}"}, "spec": spec}).spec.cluster_ip
        for i in range(300)
    }
    assert len(ips) == 300
    assert all(ip.startswith("10.96.") for ip in ips)


def test_a_new_namespace_gets_its_default_service_account(
    cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    core = client.CoreV1Api(cluster_api)

    def default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", cluster_namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    eventually("the serviceaccount controller created default", default_sa)


def test_deleting_a_deployment_garbage_collects_its_replica_sets_and_pods(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    apply(cluster, cluster_namespace, deployment("gc", replicas=1))
    kubectl(cluster, "-n", cluster_namespace, "rollout", "status", "deployment/gc", "--timeout=60s")
    client.AppsV1Api(cluster_api).delete_namespaced_deployment("gc", cluster_namespace)
    apps, core = client.AppsV1Api(cluster_api), client.CoreV1Api(cluster_api)
    eventually(
        "ReplicaSets and pods of the deleted Deployment are gone",
        lambda: (
            not apps.list_namespaced_replica_set(cluster_namespace).items
            and not core.list_namespaced_pod(cluster_namespace).items
        ),
    )


def test_deleting_a_namespace_removes_everything_in_it(cluster: ClusterInfo, cluster_api: client.ApiClient) -> None:
    core = client.CoreV1Api(cluster_api)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": namespace}})
    apply(
        cluster,
        namespace,
        deployment("web"),
        service("web"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}},
    )
    kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")

    core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    eventually(f"namespace {namespace} is deleted", gone)
    # A namespace is removed only once it is empty; check nothing was left for a later namespace of that name.
    assert not core.list_namespaced_pod(namespace).items
    assert not client.AppsV1Api(cluster_api).list_namespaced_replica_set(namespace).items


def test_the_ingress_class_is_the_default_and_names_traefik_as_its_controller(cluster_api: client.ApiClient) -> None:
    klass = client.NetworkingV1Api(cluster_api).read_ingress_class("nginx")
    assert klass.metadata.annotations["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert klass.spec.controller == "traefik.io/ingress-controller"
    namespace = client.CoreV1Api(cluster_api).read_namespace("ingress-nginx")
    assert namespace.metadata.labels["kubernetes.io/metadata.name"] == "ingress-nginx"


@pytest.mark.parametrize("class_name", ["nginx", None], ids=["class-nginx", "class-less-gets-default"])
def test_an_ingress_gets_its_load_balancer_status_from_traefik(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str, class_name: str | None
) -> None:
    ingress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "web-1.preview.test",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    if class_name:
        ingress["spec"]["ingressClassName"] = class_name
    apply(cluster, cluster_namespace, service("web"), ingress)
    net = client.NetworkingV1Api(cluster_api)

    def published() -> list[client.V1IngressLoadBalancerIngress]:
        status = net.read_namespaced_ingress("web", cluster_namespace).status
        return list(status.load_balancer.ingress or [])

    addresses = eventually("status.loadBalancer.ingress is set", published, timeout=20)
    assert [(a.ip, a.hostname) for a in addresses] == [(cluster.ingress_ip, None)]
    assert net.read_namespaced_ingress("web", cluster_namespace).spec.ingress_class_name == "nginx"


def test_an_ingress_of_another_class_is_left_alone(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    apply(
        cluster,
        cluster_namespace,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "other"},
            "spec": {
                "ingressClassName": "traefik",
                "defaultBackend": {"service": {"name": "x", "port": {"number": 80}}},
            },
        },
    )
    time.sleep(2)
    status = client.NetworkingV1Api(cluster_api).read_namespaced_ingress("other", cluster_namespace).status
    assert not status.load_balancer.ingress
