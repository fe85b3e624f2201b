"""``prenv cluster up --nodes real``: the embedded cluster with a real node instead of KWOK's fake ones.

The test starts its own cluster in ``tmp_path`` (not the session's: the node kinds are fixed when a cluster is
created), runs a pod of a locally built image on the real node, fetches its page from the pod's address on the
node's bridge (the only address besides loopback that gets traffic), and checks that ``down`` leaves no process,
bridge, mount or KUBE-/CNI- iptables chain behind. A second test runs ``--nodes both``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from prenv import toolchain
from prenv.cluster import bootstrap, processes
from prenv.cluster.cli import app
from prenv.cluster.node import images, teardown
from prenv.cluster.node.layout import NodeNetwork
from prenv.cluster.records import ClusterState, NodeCounts
from prenv.cluster.runtime import EmbeddedCluster
from tests.fixtures.node import one_node_at_a_time
from tests.integration.test_node_kubelet import k8s_and_cni_rules

pytestmark = pytest.mark.integration


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ApiException):
            if check():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def test_up_nodes_real(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A short state dir: containerd's socket path under it must stay below 108 bytes.
    state_dir = tmp_path_factory.mktemp("rn")
    suffix = secrets.token_hex(3)
    network = NodeNetwork(
        name=f"prenv-c-{suffix}", bridge=f"pc{suffix}", subnet=f"10.251.{secrets.randbelow(250)}.0/24"
    )
    with one_node_at_a_time():
        rules_before = k8s_and_cni_rules()
        cluster = EmbeddedCluster("rn", state_dir, node_kinds="real", node_network=network)
        try:
            started = time.monotonic()
            info = cluster.up(progress=lambda step, elapsed: print(f"[{elapsed:5.1f}s] {step}"))
            print(f"cluster up --nodes real: {time.monotonic() - started:.1f}s")
            node = cluster.real_node()
            assert node is not None
            assert node.layout.root == cluster.layout.node_dir

            status = CliRunner().invoke(app, ["status", "--json", "--name", "rn", "--state-dir", str(state_dir)])
            assert status.exit_code == 0, status.output
            document = json.loads(status.stdout)
            assert document["state"] == ClusterState.RUNNING.value
            assert document["nodes"] == {"real": 1, "kwok": 0}
            pids = cluster.pids()
            assert {"containerd", "kubelet", "kube-proxy", "coredns", "traefik"} <= set(pids)

            with contextlib.closing(bootstrap.api_client(info.kubeconfig)) as api:
                core = client.CoreV1Api(api)
                assert [n.metadata.name for n in core.list_node().items] == [node.name]  # no fake node
                assert bootstrap.nodes_ready(api, (node.name,))

                probe = "prenv.local/probe:1.0"
                archive = images.build_binary_image(
                    toolchain.tool_path("probe"), probe, node.layout.images_dir / "probe.tar", path_in_image="/probe"
                )
                node.import_image(archive, probe)
                core.create_namespaced_pod(
                    "default",
                    {
                        "metadata": {"name": "web", "labels": {"app": "web"}},
                        "spec": {
                            "containers": [{"name": "probe", "image": probe, "imagePullPolicy": "Never"}],
                            "terminationGracePeriodSeconds": 1,
                        },
                    },
                )
                subnet = ipaddress.ip_network(network.subnet)

                def address() -> str | None:
                    pod = core.read_namespaced_pod("web", "default")
                    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                    ip = pod.status.pod_ip
                    return ip if ready and ip and ipaddress.ip_address(ip) in subnet else None

                _wait("the pod Ready on the node's bridge", lambda: address() is not None, 120)
                ip = address()
                assert ip is not None and ipaddress.ip_address(ip) in subnet  # only this address gets traffic
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"http://{ip}:8080/", timeout=10) as response:
                    body = response.read().decode()
                assert response.status == 200
                assert body == "probe web\n"
                shims = teardown.shim_pids(node.layout.containerd_socket)
                assert shims
        finally:
            cluster.down()

        assert [p for p in [*pids.values(), *shims] if processes.is_alive(p, "")] == []
        assert not teardown.link_exists(network.bridge)
        assert teardown.mounts_below(node.layout.mount_roots()) == []
        assert teardown.network_rules(network.name) == []
        assert k8s_and_cni_rules() == rules_before
        assert not cluster.layout.root.exists()
        assert EmbeddedCluster("rn", state_dir).status().state is ClusterState.STOPPED


def _blackholes() -> str:
    return subprocess.run(["ip", "-4", "route", "show", "type", "blackhole"], capture_output=True, text=True).stdout


def test_up_nodes_both(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake and real nodes side by side: KWOK's pod range is blackholed while the cluster runs, KWOK leaves the real
    node to its kubelet, and a dead kubelet makes the cluster broken until ``up`` starts it again."""
    state_dir = tmp_path_factory.mktemp("rb")
    suffix = secrets.token_hex(3)
    network = NodeNetwork(
        name=f"prenv-c-{suffix}", bridge=f"pc{suffix}", subnet=f"10.251.{secrets.randbelow(250)}.0/24"
    )
    with one_node_at_a_time():
        assert bootstrap.FAKE_POD_RANGE not in _blackholes()
        cluster = EmbeddedCluster("rb", state_dir, node_kinds="both", node_network=network)
        try:
            info = cluster.up(progress=lambda *_: None)
            assert cluster.status().nodes == NodeCounts(real=1, kwok=2)
            assert f"blackhole {bootstrap.FAKE_POD_RANGE}" in _blackholes()
            node = cluster.real_node()
            assert node is not None
            with contextlib.closing(bootstrap.api_client(info.kubeconfig)) as api:
                core = client.CoreV1Api(api)
                assert sorted(n.metadata.name for n in core.list_node().items) == sorted(info.nodes)
                assert bootstrap.nodes_ready(api, info.nodes)
                real = core.read_node(node.name)
                # The kubelet's own status, not one KWOK made up: the real runtime, the node IP on our bridge.
                assert real.status.node_info.container_runtime_version.startswith("containerd://")
                assert {a.address for a in real.status.addresses if a.type == "InternalIP"} == {network.gateway}

            kubelet = cluster.pids()["kubelet"]
            processes.terminate([(kubelet, str(node.layout.kubelet_config))], grace=5)
            status = cluster.status()
            assert status.state is ClusterState.BROKEN
            assert status.missing == ("kubelet",)
            cluster.up(progress=lambda *_: None)
            assert cluster.status().state is ClusterState.RUNNING
            assert cluster.pids()["kubelet"] != kubelet
        finally:
            cluster.down()
        assert bootstrap.FAKE_POD_RANGE not in _blackholes()
        assert not teardown.link_exists(network.bridge)
        assert not cluster.layout.root.exists()
