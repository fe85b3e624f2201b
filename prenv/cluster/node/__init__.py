"""Groundwork for the embedded cluster's real node: containerd, the sandbox image, kubelet and CNI config, teardown.

Nothing imports this package yet; ``prenv cluster up`` still runs KWOK nodes only. Each module owns one piece:

- :mod:`.layout` - where the node's files live under the cluster's state dir, and its network (bridge, subnet);
- :mod:`.containerd` - containerd's config (CRI plugin, cgroupfs, runc, CNI) and its process;
- :mod:`.images` - OCI images built locally with umoci (the sandbox image first) and imported into containerd;
- :mod:`.config` - the kubelet configuration and the bridge CNI network list;
- :mod:`.teardown` - removes what a node leaves behind: containers, shims, mounts, the bridge, CNI iptables rules.

Linux only, and root only: containerd, runc, bridges and iptables need it.
"""

from __future__ import annotations

from prenv.cluster.node.containerd import Containerd, render_config
from prenv.cluster.node.layout import NodeLayout, NodeNetwork

__all__ = ["Containerd", "NodeLayout", "NodeNetwork", "render_config"]
