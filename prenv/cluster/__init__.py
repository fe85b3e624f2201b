"""The embedded Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK and Traefik.

prenv needs a real apiserver (admission, quotas, garbage collection, rollouts) to deploy preview environments
against, locally and in tests, without containers or a cloud. KWOK fakes only the kubelets: pods are scheduled
and become Running/Ready with IPs, but no container runs. Traefik is the real ingress controller: it serves
HTTP and HTTPS on local ports with certificates signed by the cluster's own CA. See docs/cluster.md.

    from prenv.cluster import EmbeddedCluster

    info = EmbeddedCluster("prenv").up()      # ClusterInfo: kubeconfig, server, ports, nodes, ingress, ca
    EmbeddedCluster("prenv").status()         # ClusterStatus: running | stopped | broken
    EmbeddedCluster("prenv").wildcard_certificate("preview.localtest.me")  # KeyPair(cert, key), CA-signed
    EmbeddedCluster("prenv").down()           # no process, port or file left
"""

from prenv.cluster.bootstrap import NodeSpec
from prenv.cluster.layout import DEFAULT_NAME, default_state_dir
from prenv.cluster.pki import KeyPair
from prenv.cluster.records import ClusterInfo, ClusterState, ClusterStatus, IngressPorts, NodeCounts
from prenv.cluster.runtime import EmbeddedCluster, Progress

__all__ = [
    "DEFAULT_NAME",
    "ClusterInfo",
    "ClusterState",
    "ClusterStatus",
    "EmbeddedCluster",
    "IngressPorts",
    "KeyPair",
    "NodeCounts",
    "NodeSpec",
    "Progress",
    "default_state_dir",
]
