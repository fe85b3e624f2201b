"""A kubelet from ``make tools`` registers with the embedded cluster and runs a pod on this machine for real,
kube-proxy makes a ClusterIP Service reach it, and CoreDNS on the node IP resolves the Service's name.

The node is ``prenv.cluster.node.RealNode`` next to the session's (KWOK) cluster: containerd with our config, the
sandbox image built here, the bridge CNI list, the kubelet with our config and its own cgroup root.
The pod runs the locally imported sandbox image (nothing can be pulled), gets an address on the test's own
bridge, and the node's teardown then leaves no process, mount, bridge, iptables rule (the KUBE-* and CNI-* sets
are as before), cgroup or file behind. Traffic goes only to the pod's address on that bridge, and to the
Service's ClusterIP once kube-proxy's DNAT to that address is in place.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from prenv import toolchain
from prenv.cluster import ClusterInfo, processes
from prenv.cluster.node import images, kubelet, teardown
from prenv.cluster.node.layout import NodeNetwork
from prenv.cluster.node.node import RealNode
from prenv.toolchain.versions import load_pins
from tests.fixtures.node import one_node_at_a_time

pytestmark = pytest.mark.integration


def cluster_ca(kubeconfig: Path) -> Path:
    """The CA file the cluster's kubeconfig trusts (kwokctl writes a path, relative to the kubeconfig or not)."""
    conf = yaml.safe_load(kubeconfig.read_text())
    path = Path(conf["clusters"][0]["cluster"]["certificate-authority"])
    return path if path.is_absolute() else kubeconfig.parent / path


@pytest.fixture
def real_node(cluster_api: client.ApiClient) -> Iterator[RealNode]:
    with one_node_at_a_time():
        yield from _real_node(cluster_api)


def _real_node(cluster_api: client.ApiClient) -> Iterator[RealNode]:
    # Not tmp_path: containerd's socket path must stay under 108 bytes, and pytest's paths carry the test name.
    root = Path(tempfile.mkdtemp(prefix="prenv-node-", dir="/tmp"))
    suffix = secrets.token_hex(3)
    network = NodeNetwork(
        name=f"prenv-k-{suffix}", bridge=f"pk{suffix}", subnet=f"10.251.{secrets.randbelow(250)}.0/24"
    )
    node = RealNode(root / "node", name=f"real-{suffix}", network=network)
    try:
        yield node
    finally:
        with contextlib.suppress(Exception):  # a safety net for a test that failed half-way, whatever the error
            node.down()
        with contextlib.suppress(ApiException):
            client.CoreV1Api(cluster_api).delete_node(node.name)
        shutil.rmtree(root, ignore_errors=True)


def wait(what: str, check: Callable[[], bool], timeout: float, node: RealNode) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ApiException):
            if check():
                return
        if time.monotonic() > deadline:
            tail = "\n".join(node.layout.kubelet_log.read_text(errors="replace").splitlines()[-40:])
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; kubelet log tail:\n{tail}")
        time.sleep(0.5)


def k8s_and_cni_rules() -> set[str]:
    """Every KUBE-* and CNI-* chain and rule in iptables and ip6tables, counters left out."""
    found = set()
    for save in ("iptables-save", "ip6tables-save"):
        out = subprocess.run([save], capture_output=True, text=True, check=True, timeout=60).stdout
        for line in out.splitlines():
            if ("KUBE-" in line or "CNI-" in line) and not line.startswith("#"):
                found.add(f"{save}: {line.split(' [')[0] if line.startswith(':') else line}")
    return found


def kernel_settings() -> dict[str, str]:
    return {key: (Path("/proc/sys") / key).read_text().strip() for key in kubelet.KERNEL_SETTINGS}


def dnat_in_place(cluster_ip: str, pod_ip: str, port: int = 80) -> bool:
    """Whether kube-proxy's rules send ``cluster_ip`` to ``pod_ip:port``."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    return f"-d {cluster_ip}/32" in rules and f"--to-destination {pod_ip}:{port}" in rules


def dns_query(server: str, name: str) -> tuple[int, list[str]]:
    """One A query over UDP to ``server``:53; ``(rcode, addresses)``. Hand-made: no DNS library is a dependency."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    tid = secrets.randbelow(65536)
    query = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, (server, 53))
        reply = s.recv(4096)
    assert struct.unpack(">H", reply[:2])[0] == tid
    rcode, answers = reply[3] & 0x0F, struct.unpack(">H", reply[6:8])[0]
    offset, addresses = 12 + len(qname) + 4, []
    for _ in range(answers):
        if reply[offset] & 0xC0 == 0xC0:  # a compressed name: a pointer
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        rtype, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(reply[offset : offset + length]))
        offset += length
    return rcode, addresses


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    node = core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def test_a_kubelet_built_here_registers_runs_a_local_image_pod_on_the_bridge_and_leaves_nothing(
    cluster: ClusterInfo, real_node: RealNode, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    core = client.CoreV1Api(cluster_api)
    rules_before = k8s_and_cni_rules()
    settings_before = kernel_settings()
    started = real_node.up(kubeconfig=cluster.kubeconfig, client_ca=cluster_ca(cluster.kubeconfig))
    proxy_pid = real_node.start_proxy(kubeconfig=cluster.kubeconfig)
    assert started.node_ip == real_node.network.gateway

    wait("the node to be Ready", lambda: node_ready(core, real_node.name), 120, real_node)
    registered = core.read_node(real_node.name)
    assert registered.status.node_info.kubelet_version == f"v{load_pins().kubernetes}"
    assert registered.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert {a.address for a in registered.status.addresses if a.type == "InternalIP"} == {real_node.network.gateway}

    core.create_namespaced_pod(
        cluster_namespace,
        {
            "metadata": {"name": "sleeper", "labels": {"app": "sleeper"}},
            "spec": {
                "nodeName": real_node.name,
                "containers": [{"name": "main", "image": images.SANDBOX_IMAGE, "imagePullPolicy": "Never"}],
                "terminationGracePeriodSeconds": 1,
            },
        },
    )

    subnet = ipaddress.ip_network(real_node.network.subnet)

    def ready_on_our_bridge() -> bool:
        # KWOK now manages only its annotated fake nodes, but a status from anyone but the kubelet (KWOK faked
        # Ready with a 10.0.0.x address before it was told so) must never get traffic: only a status with an
        # address on our bridge is the kubelet's, and only that address may be contacted.
        pod = core.read_namespaced_pod("sleeper", cluster_namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return ready and pod.status.pod_ip is not None and ipaddress.ip_address(pod.status.pod_ip) in subnet

    wait("the kubelet to report the pod Ready with an address on our bridge", ready_on_our_bridge, 120, real_node)
    pod = core.read_namespaced_pod("sleeper", cluster_namespace)
    assert pod.status.container_statuses[0].state.running is not None
    ip = pod.status.pod_ip
    assert ipaddress.ip_address(ip) in subnet, ip
    # The pod's own kernel answers on our bridge (nothing listens: a reset, not a timeout).
    with pytest.raises(ConnectionRefusedError), socket.create_connection((ip, 80), timeout=5):
        pass
    shims = teardown.shim_pids(real_node.layout.containerd_socket)
    assert len(shims) == 1  # one runc shim serves a pod: its sandbox and its container

    # kube-proxy turns a ClusterIP Service into a DNAT to the pod. Connect to the ClusterIP only once that rule is
    # in place: without it the packet would follow the default route off this machine.
    service = core.create_namespaced_service(
        cluster_namespace,
        {"metadata": {"name": "sleeper"}, "spec": {"selector": {"app": "sleeper"}, "ports": [{"port": 80}]}},
    )
    cluster_ip = service.spec.cluster_ip
    wait("kube-proxy's DNAT to the pod", lambda: dnat_in_place(cluster_ip, ip), 60, real_node)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((cluster_ip, 80), timeout=5):
        pass

    # CoreDNS on the node IP (the pods' DNS server) answers the cluster's names and refuses all others.
    dns_pid = real_node.start_dns(kubeconfig=cluster.kubeconfig)
    wait("CoreDNS to be ready", real_node.dns_ready, 60, real_node)
    gateway = real_node.network.gateway
    assert dns_query(gateway, f"sleeper.{cluster_namespace}.svc.cluster.local") == (0, [cluster_ip])
    assert dns_query(gateway, "kubernetes.default.svc.cluster.local")[0] == 0
    assert dns_query(gateway, f"nothing.{cluster_namespace}.svc.cluster.local") == (3, [])  # NXDOMAIN
    assert dns_query(gateway, "example.com")[0] == 5  # REFUSED: not forwarded anywhere

    report = real_node.down()

    assert report.left == []
    assert k8s_and_cni_rules() == rules_before
    assert kernel_settings() == settings_before
    pids = [started.kubelet, started.containerd, proxy_pid, dns_pid, *shims]
    alive = [p for p in pids if processes.is_alive(p, "")]
    assert alive == []
    assert teardown.mounts_below(real_node.layout.mount_roots()) == []
    assert not teardown.link_exists(real_node.network.bridge)
    assert teardown.network_rules(real_node.network.name) == []
    assert not any((h / real_node.cgroup_root.strip("/")).exists() for h in kubelet.cgroup_hierarchies())
    assert not real_node.layout.root.exists()


def test_a_pod_reaches_another_through_its_service_name(
    cluster: ClusterInfo, real_node: RealNode, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    """Inside the pod: its resolver asks CoreDNS on the node IP, kube-proxy sends the ClusterIP to the other pod."""
    core = client.CoreV1Api(cluster_api)
    real_node.up(kubeconfig=cluster.kubeconfig, client_ca=cluster_ca(cluster.kubeconfig))
    real_node.start_proxy(kubeconfig=cluster.kubeconfig)
    real_node.start_dns(kubeconfig=cluster.kubeconfig)
    probe = "prenv.local/probe:1.0"
    archive = images.build_binary_image(
        toolchain.tool_path("probe"), probe, real_node.layout.images_dir / "probe.tar", path_in_image="/probe"
    )
    real_node.import_image(archive, probe)
    wait("the node to be Ready", lambda: node_ready(core, real_node.name), 120, real_node)

    for name in ("client", "server"):
        core.create_namespaced_pod(
            cluster_namespace,
            {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "nodeName": real_node.name,
                    "containers": [{"name": "probe", "image": probe, "imagePullPolicy": "Never"}],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        )
    service = core.create_namespaced_service(
        cluster_namespace,
        {
            "metadata": {"name": "server"},
            "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    subnet = ipaddress.ip_network(real_node.network.subnet)

    def address(name: str) -> str | None:
        pod = core.read_namespaced_pod(name, cluster_namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ip = pod.status.pod_ip
        return ip if ready and ip and ipaddress.ip_address(ip) in subnet else None  # only the kubelet's, see above

    wait("both pods Ready on our bridge", lambda: bool(address("client") and address("server")), 120, real_node)
    client_ip, server_ip = address("client"), address("server")
    assert client_ip and server_ip
    wait("kube-proxy's DNAT", lambda: dnat_in_place(service.spec.cluster_ip, server_ip, 8080), 60, real_node)
    wait("CoreDNS to be ready", real_node.dns_ready, 60, real_node)

    name = f"server.{cluster_namespace}.svc.cluster.local."
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"http://{client_ip}:8080/fetch?url=http://{name}/", timeout=30
    ) as response:
        body = response.read().decode()
    assert response.status == 200
    assert body == "probe server\n"

    assert real_node.down().left == []


def test_the_clusters_traefik_serves_a_pod_on_the_real_node_through_an_ingress(
    cluster: ClusterInfo, real_node: RealNode, cluster_api: client.ApiClient, cluster_namespace: str
) -> None:
    """Ingress → Traefik (a host process) → the pod's address on our bridge: the page a reviewer would open."""
    core = client.CoreV1Api(cluster_api)
    real_node.up(kubeconfig=cluster.kubeconfig, client_ca=cluster_ca(cluster.kubeconfig))
    probe = "prenv.local/probe:1.0"
    archive = images.build_binary_image(
        toolchain.tool_path("probe"), probe, real_node.layout.images_dir / "probe.tar", path_in_image="/probe"
    )
    real_node.import_image(archive, probe)
    wait("the node to be Ready", lambda: node_ready(core, real_node.name), 120, real_node)
    core.create_namespaced_pod(
        cluster_namespace,
        {
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "nodeName": real_node.name,
                "containers": [{"name": "probe", "image": probe, "imagePullPolicy": "Never"}],
                "terminationGracePeriodSeconds": 1,
            },
        },
    )
    core.create_namespaced_service(
        cluster_namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    subnet = ipaddress.ip_network(real_node.network.subnet)
    discovery = client.DiscoveryV1Api(cluster_api)

    def endpoints() -> list[str]:
        # Raw JSON: the client's model refuses a slice whose endpoints are still null.
        response = discovery.list_namespaced_endpoint_slice(
            cluster_namespace, label_selector="kubernetes.io/service-name=web", _preload_content=False
        )
        slices = json.loads(response.data)["items"]
        return [a for s in slices for e in s.get("endpoints") or [] for a in e.get("addresses", [])]

    # Only once the Service's endpoints are the kubelet's address on our bridge (not KWOK's made-up one) does the
    # Ingress exist, so Traefik never learns an address off this machine.
    wait(
        "the Service's endpoints to be the pod on our bridge",
        lambda: (a := endpoints()) != [] and all(ipaddress.ip_address(x) in subnet for x in a),
        120,
        real_node,
    )
    host = f"web-{real_node.name}.node.test"
    client.NetworkingV1Api(cluster_api).create_namespaced_ingress(
        cluster_namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "rules": [
                    {
                        "host": host,
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
                ]
            },
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://127.0.0.1:{cluster.ingress.http}/", headers={"Host": host})

    def page() -> str | None:
        try:
            with opener.open(request, timeout=5) as response:
                return response.read().decode() if response.status == 200 else None
        except OSError:  # 404 until Traefik has the route
            return None

    wait("Traefik to serve the pod", lambda: page() is not None, 60, real_node)
    assert page() == "probe web\n"
    assert real_node.down().left == []
