"""The real node's runtime on this machine: containerd from our config, a sandbox image built here, pods on the bridge.

Everything runs for real (containerd, runc, the CNI plugins, iptables, umoci, crictl) and everything a test
starts is removed by the node's own teardown, which the test then checks: no containerd, shim or container
process, no mount below the node's directory, no bridge, no iptables rule of the test's network, no directory.
Each test has its own network name, bridge and subnet, so tests (and a running cluster) never share one.
Traffic goes only to addresses on the test's own bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prenv import toolchain
from prenv.cluster import processes
from prenv.cluster.node import config, images, teardown
from prenv.cluster.node.containerd import Containerd
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.procs import free_port, wait_until
from tests.fixtures.node import one_node_at_a_time

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Node:
    layout: NodeLayout
    network: NodeNetwork
    containerd: Containerd


@pytest.fixture
def node() -> Iterator[Node]:
    with one_node_at_a_time():
        yield from _node()


def _node() -> Iterator[Node]:
    # Not tmp_path: containerd's socket path must stay under 108 bytes, and pytest's paths carry the test name.
    root = Path(tempfile.mkdtemp(prefix="prenv-node-", dir="/tmp"))
    suffix = secrets.token_hex(3)
    network = NodeNetwork(
        name=f"prenv-test-{suffix}", bridge=f"pt{suffix}", subnet=f"10.250.{secrets.randbelow(250)}.0/24"
    )
    layout = NodeLayout(root / "node")
    try:
        yield Node(layout, network, Containerd(layout, sandbox_image=images.SANDBOX_IMAGE))
    finally:
        # A safety net for a test that failed half-way (whatever the error); after a passing test it finds nothing.
        with contextlib.suppress(Exception):
            teardown.teardown(layout, network)
        shutil.rmtree(root, ignore_errors=True)


def started(node: Node) -> int:
    """Start containerd and import the sandbox image built from ``make tools``'s pause binary; return the pid."""
    archive = images.build_sandbox_image(toolchain.tool_path("pause"), node.layout.images_dir / "pause.tar")
    pid = node.containerd.start()
    images.import_image(node.containerd, archive, images.SANDBOX_IMAGE)
    return pid


def task(node: Node, name: str) -> tuple[int, str]:
    """``(pid, status)`` of a task in the k8s.io namespace."""
    for line in node.containerd.ctr("tasks", "ls").splitlines()[1:]:
        parts = line.split()
        if parts[0] == name:
            return int(parts[1]), parts[2]
    raise AssertionError(f"no task {name}")


def assert_nothing_left(node: Node, pids: list[int]) -> None:
    alive = [pid for pid in pids if processes.is_alive(pid, "")]
    assert alive == [], f"processes left: {[(p, processes.cmdline(p)) for p in alive]}"
    assert teardown.shim_pids(node.layout.containerd_socket) == []
    assert teardown.mounts_below(node.layout.mount_roots()) == []
    assert not teardown.link_exists(node.network.bridge)
    assert teardown.network_rules(node.network.name) == []
    assert not node.layout.root.exists()


def test_the_sandbox_image_built_here_keeps_running_under_containerd_and_teardown_leaves_nothing(node: Node) -> None:
    containerd_pid = started(node)
    assert images.SANDBOX_IMAGE in images.images(node.containerd)

    node.containerd.ctr("run", "--detach", "--runc-root", str(node.layout.runc_root), images.SANDBOX_IMAGE, "sbx")
    wait_until("the sandbox task to run", lambda: task(node, "sbx")[1] == "RUNNING", timeout=30)
    pid, _ = task(node, "sbx")
    # "runc init" until runc starts the container, then the image's entrypoint.
    wait_until("the sandbox to exec /pause", lambda: processes.cmdline(pid) == ["/pause"], timeout=10)
    shims = teardown.shim_pids(node.layout.containerd_socket)
    assert len(shims) == 1
    assert teardown.mounts_below(node.layout.mount_roots())  # its root filesystem
    time.sleep(1.5)
    assert task(node, "sbx") == (pid, "RUNNING")  # a sandbox must not exit on its own

    report = teardown.teardown(node.layout, node.network)

    assert report.left == []
    assert_nothing_left(node, [containerd_pid, pid, *shims])


def crictl(node: Node, *args: str) -> str:
    sock = f"unix://{node.layout.containerd_socket}"
    argv = [str(toolchain.tool_path("crictl")), "--runtime-endpoint", sock, "--image-endpoint", sock]
    proc = subprocess.run([*argv, "--timeout", "60s", *args], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"crictl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("how", ["after-containerd-was-killed", "with-containerd-running"])
def test_a_pod_sandbox_on_the_bridge_is_removed_with_its_bridge_rules_and_mounts(node: Node, how: str) -> None:
    config.write_cni_conflist(node.layout, node.network)
    containerd_pid = started(node)
    logs = node.layout.root / "pod-logs"
    logs.mkdir()
    port = {"protocol": 0, "container_port": 80, "host_port": free_port(), "host_ip": "127.0.0.1"}
    pod = node.layout.root / "pod.json"
    pod.write_text(
        json.dumps(
            {
                "metadata": {"name": "sandbox", "namespace": "default", "uid": secrets.token_hex(8), "attempt": 0},
                "log_directory": str(logs),
                "port_mappings": [port],
                "linux": {},
            }
        )
    )

    pod_id = crictl(node, "runp", str(pod)).strip()
    status = json.loads(crictl(node, "inspectp", "-o", "json", pod_id))
    assert status["status"]["state"] == "SANDBOX_READY"
    ip = status["status"]["network"]["ip"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.network.subnet)
    sandbox_pid = int(status["info"]["pid"])
    wait_until("the sandbox to exec /pause", lambda: processes.cmdline(sandbox_pid) == ["/pause"], timeout=10)
    assert teardown.link_exists(node.network.bridge)
    assert teardown.network_rules(node.network.name), "the bridge and portmap plugins added no iptables rule"
    assert any("netns" in str(m) for m in teardown.mounts_below(node.layout.mount_roots()))
    # The pod's address is on our own bridge: nothing listens there, so the pod's kernel answers with a reset.
    with pytest.raises(ConnectionRefusedError), socket.create_connection((ip, 80), timeout=5):
        pass
    shims = teardown.shim_pids(node.layout.containerd_socket)

    if how == "after-containerd-was-killed":
        os.kill(containerd_pid, signal.SIGKILL)
        wait_until("containerd to die", lambda: not processes.is_alive(containerd_pid, "containerd"), timeout=10)
        report = teardown.teardown(node.layout, node.network)
    else:
        report = teardown.teardown(node.layout, node.network, crictl=toolchain.tool_path("crictl"))

    assert report.left == []
    assert_nothing_left(node, [containerd_pid, sandbox_pid, *shims])
