"""One real node, up and down: the door the embedded cluster is meant to use.

``RealNode(root, name=...).up(kubeconfig=..., client_ca=...)`` writes the CNI list, starts containerd, builds
and imports the sandbox image (once), and starts the kubelet, which then registers itself with the API server
(waiting for the Node to be Ready is the caller's job: it has the API client). ``down()`` is
:func:`prenv.cluster.node.teardown.teardown` with this node's network and cgroup root; it works after a crash
too, and from nothing but the node's directory and name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prenv.cluster.node import config, dns, images, kubelet, teardown
from prenv.cluster.node.containerd import Containerd
from prenv.cluster.node.dns import CoreDns
from prenv.cluster.node.kubelet import Kubelet
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.cluster.node.proxy import KubeProxy

ToolPath = Callable[[str], Path]


@dataclass(frozen=True, slots=True)
class NodeProcesses:
    """What :meth:`RealNode.up` started (or found running)."""

    containerd: int
    kubelet: int
    node_ip: str


def _default_tool_path(name: str) -> Path:
    from prenv.toolchain import tool_path

    return tool_path(name)


class RealNode:
    """A kubelet on containerd with the bridge CNI, all of it below ``root`` (e.g. ``<cluster dir>/node``)."""

    def __init__(
        self,
        root: Path,
        *,
        name: str,
        network: NodeNetwork | None = None,
        cgroup_root: str | None = None,
        tool_path: ToolPath | None = None,
    ) -> None:
        self.name = name
        self.layout = NodeLayout(root)
        self.network = network or NodeNetwork()
        self.cgroup_root = cgroup_root or f"/prenv-{name}"
        self._tool_path = tool_path or _default_tool_path
        self.containerd = Containerd(self.layout, sandbox_image=images.SANDBOX_IMAGE)

    def kubelet_for(self, kubeconfig: Path, settings: config.KubeletSettings) -> Kubelet:
        return Kubelet(self.layout, self.network, node_name=self.name, kubeconfig=kubeconfig, settings=settings)

    def up(
        self,
        *,
        kubeconfig: Path,
        client_ca: Path,
        cluster_dns: tuple[str, ...] | None = None,
        kubelet_port: int = 10250,
    ) -> NodeProcesses:
        """Start what is not running yet; return the pids. The kubelet's API listens on the node IP (the bridge
        gateway), so its port only has to be free there; its health port is a free one on 127.0.0.1. Pods are
        given the node IP as their DNS server unless ``cluster_dns`` says otherwise: that is where
        :meth:`start_dns` makes CoreDNS listen."""
        kubelet.record_kernel_settings(self.layout)
        config.write_cni_conflist(self.layout, self.network)
        containerd_pid = self.containerd.start()
        if images.SANDBOX_IMAGE not in images.images(self.containerd):
            archive = images.build_sandbox_image(self._tool_path("pause"), self.layout.images_dir / "pause.tar")
            images.import_image(self.containerd, archive, images.SANDBOX_IMAGE)
        settings = config.KubeletSettings(
            client_ca_file=client_ca,
            cluster_dns=cluster_dns or (self.network.gateway,),
            port=kubelet_port,
            healthz_port=_free_port(),
            cgroup_root=self.cgroup_root,
        )
        kubelet_pid = self.kubelet_for(kubeconfig, settings).start(self._tool_path("kubelet"))
        return NodeProcesses(containerd=containerd_pid, kubelet=kubelet_pid, node_ip=self.network.gateway)

    def import_image(self, archive: Path, ref: str) -> None:
        """Make an image (an archive from :func:`prenv.cluster.node.images.build_binary_image`) usable by pods."""
        images.import_image(self.containerd, archive, ref)

    def start_proxy(self, *, kubeconfig: Path) -> int:
        """Start kube-proxy for this node (ClusterIP Services as iptables rules); at most one per machine."""
        return KubeProxy(self.layout, self.network, node_name=self.name, kubeconfig=kubeconfig).start(
            self._tool_path("kube-proxy"), healthz_port=_free_port(), metrics_port=_free_port()
        )

    def start_dns(self, *, kubeconfig: Path) -> int:
        """Start CoreDNS on the node IP, port 53 (see :mod:`prenv.cluster.node.dns`); wait with :meth:`dns_ready`."""
        return CoreDns(self.layout, self.network, kubeconfig=kubeconfig).start(
            self._tool_path("coredns"), health_port=_free_port(), ready_port=_free_port()
        )

    def dns_ready(self) -> bool:
        return dns.ready(self.layout)

    def down(self, *, remove_files: bool = True) -> teardown.Report:
        """Stop and remove everything of the node (see :mod:`prenv.cluster.node.teardown`)."""
        return teardown.teardown(
            self.layout,
            self.network,
            crictl=self._optional_tool("crictl"),
            kube_proxy=self._optional_tool("kube-proxy"),
            cgroup_root=self.cgroup_root,
            remove_files=remove_files,
        )

    def _optional_tool(self, name: str) -> Path | None:
        try:
            return self._tool_path(name)
        except Exception:  # a missing toolchain must not stop a teardown; it does what it can without the tool
            return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
