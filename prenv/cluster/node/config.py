"""The kubelet's configuration and the bridge CNI network list of the real node.

kubelet settings this machine needs (checked here): ``cgroupDriver: cgroupfs`` (containerd's runc runtime is
configured the same way, and there is no systemd), ``failSwapOn: false`` (the machine may have swap) and
``failCgroupV1: false`` (the hierarchy is cgroup v1 hybrid, which kubelet 1.33 refuses by default). Image
garbage collection is off (``imageGCHighThresholdPercent: 100``): every image was imported locally and a
collected one could never be pulled back. The kubelet's API listens on the bridge's gateway address (the node
IP), its health endpoint on 127.0.0.1; nothing listens on the machine's external address.

The CNI list is ``bridge`` (with ``host-local`` IPAM, the bridge as the pods' gateway, masquerade for traffic
leaving the subnet, hairpin so a pod can reach itself through a Service) followed by ``portmap`` for
``hostPort``. The loopback interface is not in the list: containerd's CRI plugin sets it up with the
``loopback`` plugin from the same directory. The bridge plugin does not enforce NetworkPolicy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prenv.cluster.node.layout import NodeLayout, NodeNetwork

CNI_VERSION = "1.0.0"  # the newest spec Debian's plugins (1.1.1) and containerd 1.6's libcni both speak
CONFLIST_NAME = "10-prenv.conflist"


@dataclass(frozen=True, slots=True)
class KubeletSettings:
    """What differs between nodes: where the API server's CA, the kubelet's serving pair and DNS are.

    ``cluster_dns`` is CoreDNS's Service IP; ``resolv_conf`` the file pods with ``dnsPolicy: Default`` and
    CoreDNS's upstream inherit.
    """

    client_ca_file: Path
    cluster_dns: tuple[str, ...]
    port: int = 10250
    healthz_port: int = 10248
    cluster_domain: str = "cluster.local"
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    resolv_conf: Path = Path("/etc/resolv.conf")
    max_pods: int = 110
    # The node's own cgroup below which every pod cgroup lives (see prenv.cluster.node.kubelet).
    cgroup_root: str = "/prenv-node"


def kubelet_config(layout: NodeLayout, network: NodeNetwork, settings: KubeletSettings) -> dict[str, Any]:
    """The KubeletConfiguration (kubelet.config.k8s.io/v1beta1) as a dict."""
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": network.gateway,  # the node IP, on our bridge: reachable by the API server, not from outside
        "port": settings.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(settings.client_ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": settings.cluster_domain,
        "clusterDNS": list(settings.cluster_dns),
        "resolvConf": str(settings.resolv_conf),
        "podCIDR": network.subnet,
        "cgroupRoot": settings.cgroup_root,
        "cgroupsPerQOS": True,
        "podLogsDir": str(layout.root / "pod-logs"),
        "volumePluginDir": str(layout.kubelet_dir / "volume-plugins"),
        "maxPods": settings.max_pods,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "enableDebuggingHandlers": True,
        "staticPodPath": "",
    }
    if settings.tls_cert_file and settings.tls_private_key_file:
        config["tlsCertFile"] = str(settings.tls_cert_file)
        config["tlsPrivateKeyFile"] = str(settings.tls_private_key_file)
    return config


def cni_conflist(layout: NodeLayout, network: NodeNetwork) -> dict[str, Any]:
    """The CNI network list (spec ``CNI_VERSION``) for the node's bridge."""
    return {
        "cniVersion": CNI_VERSION,
        "name": network.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.subnet, "gateway": network.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_kubelet_config(layout: NodeLayout, network: NodeNetwork, settings: KubeletSettings) -> Path:
    layout.kubelet_dir.mkdir(parents=True, exist_ok=True)
    text = "# Generated by prenv.cluster.node.config\n" + yaml.safe_dump(
        kubelet_config(layout, network, settings), sort_keys=False
    )
    layout.kubelet_config.write_text(text, encoding="utf-8")
    return layout.kubelet_config


def write_cni_conflist(layout: NodeLayout, network: NodeNetwork) -> Path:
    """Write the network list as the only file of the node's CNI config dir (containerd loads one)."""
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    for stale in layout.cni_conf_dir.glob("*.conflist"):
        if stale.name != CONFLIST_NAME:
            stale.unlink()
    path = layout.cni_conf_dir / CONFLIST_NAME
    path.write_text(json.dumps(cni_conflist(layout, network), indent=2) + "\n", encoding="utf-8")
    return path
