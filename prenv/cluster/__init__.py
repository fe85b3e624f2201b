"""The embedded Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK.

prenv needs a real apiserver (admission, quotas, garbage collection, rollouts) to deploy preview environments
against, locally and in tests, without containers or a cloud. KWOK fakes only the kubelets: pods are scheduled
and become Running/Ready with IPs, but no container runs. See docs/cluster.md.

    from prenv.cluster import EmbeddedCluster

    info = EmbeddedCluster("prenv").up()      # ClusterInfo: kubeconfig, server, ports, nodes
    EmbeddedCluster("prenv").status()         # ClusterStatus: running | stopped | broken
    EmbeddedCluster("prenv").down()           # no process, port or file left
"""

from prenv.cluster.bootstrap import NodeSpec
from prenv.cluster.layout import DEFAULT_NAME, default_state_dir
from prenv.cluster.records import ClusterInfo, ClusterState, ClusterStatus
from prenv.cluster.runtime import EmbeddedCluster, Progress

__all__ = [
    "DEFAULT_NAME",
    "ClusterInfo",
    "ClusterState",
    "ClusterStatus",
    "EmbeddedCluster",
    "NodeSpec",
    "Progress",
    "default_state_dir",
]
