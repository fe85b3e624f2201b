"""Where a real node keeps its files, and the network it puts its pods on; computed in one place, touching nothing.

Everything lives under one directory (``<cluster dir>/node``) so that ``down`` can find and remove it all:
containerd's root (images, snapshots) and state (task bundles, runc state, network-namespace mounts), the CNI
config and IP allocations, the kubelet's root. The only exception is containerd's shim sockets, which 1.6
always puts in ``/run/containerd/s/`` (named by a hash of our socket path, so they never collide with another
containerd's); a shim removes its socket when it exits.

    <node>/
    ├── containerd/
    │   ├── config.toml   containerd.sock   containerd.pid   containerd.log
    │   ├── root/         images, content, overlayfs snapshots (mounted)
    │   └── state/        task bundles (mounted rootfs), runc/<namespace>/, netns/ (bind mounts)
    ├── cni/net.d/        the network list (one file)
    ├── cni/ipam/         host-local's allocations
    ├── images/           image archives built for import
    ├── kernel-settings.json  sysctls as they were before the kubelet and CNI changed them
    ├── kube-proxy/       config.yaml, kube-proxy.pid, kube-proxy.log
    ├── coredns/          Corefile, coredns.pid, coredns.log, ready-port
    ├── pod-logs/         the kubelet's podLogsDir
    └── kubelet/          config.yaml, kubelet.pid, kubelet.log, root/ (mounts: volumes), volume-plugins/
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from prenv.errors import ConfigError

# sockaddr_un.sun_path is 108 bytes including the terminating NUL; containerd fails with a bare "invalid
# argument" past that, so the layout refuses such a directory up front.
MAX_SOCKET_PATH = 107

# A Linux interface name is at most 15 characters (IFNAMSIZ - 1).
_BRIDGE_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
_NETWORK_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class NodeNetwork:
    """The pod network of one node: a CNI network name, its Linux bridge and the node's pod subnet.

    The network name appears in every iptables rule the CNI plugins add (as a comment), which is how
    teardown recognises ours. The default subnet stays clear of the cluster's Service range (10.96.0.0/16)
    and of the host's own networks.
    """

    name: str = "prenv"
    bridge: str = "prenv0"
    subnet: str = "10.244.0.0/24"

    def __post_init__(self) -> None:
        if not _NETWORK_RE.match(self.name):
            raise ConfigError("node network name", f"{self.name!r} must be a DNS-1123 subdomain-like name")
        if not _BRIDGE_RE.match(self.bridge):
            raise ConfigError("node bridge", f"{self.bridge!r} must be 1-15 characters of a-z, 0-9, '-'")
        try:
            net = ipaddress.ip_network(self.subnet)
        except ValueError as e:
            raise ConfigError("node subnet", f"{self.subnet!r} is not a network in CIDR form") from e
        if net.version != 4 or not net.is_private or net.prefixlen > 28:
            raise ConfigError("node subnet", f"{self.subnet!r} must be a private IPv4 network of at least /28")

    @property
    def gateway(self) -> str:
        """The bridge's own address (first of the subnet): how pods reach services on the host."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Paths of one node under ``root``. Pure: computing them touches no file."""

    root: Path

    def __post_init__(self) -> None:
        if not self.root.is_absolute():
            raise ConfigError("node directory", f"{self.root} must be an absolute path")
        if len(str(self.containerd_socket)) > MAX_SOCKET_PATH:
            raise ConfigError(
                "node directory",
                f"{self.root} is too deep: containerd's socket path would exceed {MAX_SOCKET_PATH} bytes; "
                "use a shorter state dir (PRENV_STATE_DIR)",
            )

    @property
    def containerd_dir(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def containerd_pidfile(self) -> Path:
        return self.containerd_dir / "containerd.pid"

    @property
    def containerd_log(self) -> Path:
        return self.containerd_dir / "containerd.log"

    @property
    def containerd_root(self) -> Path:
        return self.containerd_dir / "root"

    @property
    def containerd_state(self) -> Path:
        return self.containerd_dir / "state"

    @property
    def runc_root(self) -> Path:
        """runc's own state; the runc shim adds one directory per containerd namespace below it (so ``ctr run``
        must get ``--runc-root`` with this very path, not with the namespace appended)."""
        return self.containerd_state / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.kubelet_dir / "config.yaml"

    @property
    def kubelet_pidfile(self) -> Path:
        return self.kubelet_dir / "kubelet.pid"

    @property
    def kubelet_log(self) -> Path:
        return self.kubelet_dir / "kubelet.log"

    @property
    def proxy_dir(self) -> Path:
        return self.root / "kube-proxy"

    @property
    def proxy_config(self) -> Path:
        return self.proxy_dir / "config.yaml"

    @property
    def proxy_pidfile(self) -> Path:
        return self.proxy_dir / "kube-proxy.pid"

    @property
    def proxy_log(self) -> Path:
        return self.proxy_dir / "kube-proxy.log"

    @property
    def dns_dir(self) -> Path:
        return self.root / "coredns"

    @property
    def corefile(self) -> Path:
        return self.dns_dir / "Corefile"

    @property
    def dns_pidfile(self) -> Path:
        return self.dns_dir / "coredns.pid"

    @property
    def dns_log(self) -> Path:
        return self.dns_dir / "coredns.log"

    @property
    def kernel_settings(self) -> Path:
        """The machine's kernel settings from before the node changed them (restored by teardown)."""
        return self.root / "kernel-settings.json"

    def mount_roots(self) -> tuple[Path, ...]:
        """Directories below which every mount the node makes lives (overlay rootfs, shm, netns)."""
        return (self.containerd_root, self.containerd_state, self.kubelet_dir)
