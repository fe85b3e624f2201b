"""The embedded cluster's real node: containerd, the sandbox image, kubelet and CNI config, teardown.

``prenv cluster up --nodes real|both`` (``prenv.cluster.runtime.EmbeddedCluster(node_kinds=...)``) starts one under
the cluster's dir; the default, ``--nodes kwok``, does not use this package. Each module owns one piece:

- :mod:`.layout` - where the node's files live under the cluster's state dir, and its network (bridge, subnet);
- :mod:`.containerd` - containerd's config (CRI plugin, cgroupfs, runc, CNI) and its process;
- :mod:`.images` - OCI images built locally with umoci (the sandbox image first) and imported into containerd;
- :mod:`.config` - the kubelet configuration and the bridge CNI network list;
- :mod:`.kubelet` - what the kubelet needs before it starts (bridge with the node IP, cgroup root) and its process;
- :mod:`.proxy` - kube-proxy (iptables mode, bound to loopback and the node IP) and its ``--cleanup``;
- :mod:`.dns` - CoreDNS on the node IP serving the cluster domain only (the pods' DNS server);
- :mod:`.routes` - the blackhole route for KWOK's fake pod range when real and fake nodes share a cluster;
- :mod:`.teardown` - removes what a node leaves behind: kubelet, containers, shims, mounts, the bridge, CNI
  iptables rules, cgroups, files;
- :mod:`.node` - :class:`RealNode`, the one door: ``up()`` does the above in order, ``start_proxy()`` and
  ``start_dns()`` add kube-proxy and CoreDNS, ``down()`` tears it all down (tests/integration/test_node_kubelet.py
  runs it against the session's cluster).

Linux only, and root only: containerd, runc, bridges and iptables need it.
"""

from __future__ import annotations

from prenv.cluster.node.config import KubeletSettings, write_cni_conflist, write_kubelet_config
from prenv.cluster.node.containerd import Containerd, render_config
from prenv.cluster.node.images import SANDBOX_IMAGE, build_binary_image, build_sandbox_image, import_image
from prenv.cluster.node.kubelet import Kubelet
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.cluster.node.node import NodeProcesses, RealNode

__all__ = [
    "SANDBOX_IMAGE",
    "Containerd",
    "Kubelet",
    "KubeletSettings",
    "NodeLayout",
    "NodeNetwork",
    "NodeProcesses",
    "RealNode",
    "build_binary_image",
    "build_sandbox_image",
    "import_image",
    "render_config",
    "write_cni_conflist",
    "write_kubelet_config",
]
