"""The real node's kubelet: what it needs in place before it starts, and its process.

The kubelet cannot create three things itself, so :meth:`Kubelet.start` does:

- its node IP: the node registers with the bridge's gateway address, which stays on this machine (the API
  server reaches the kubelet there, pods reach the host there). The bridge CNI plugin creates its bridge only
  for the first pod, so we create it, with that address, beforehand; the plugin then adopts it.
- its cgroup root (``cgroupRoot``, one per node, e.g. ``/prenv-node``) in every cgroup hierarchy: with
  cgroupfs the kubelet refuses to start when it is missing. Everything of the node's pods lives below it, so
  teardown removes it (:func:`remove_cgroup_root`) and never touches anyone else's cgroups.
- its files: config, root dir, pod logs and volume-plugin dir all under the node's directory, never in
  /var/lib/kubelet, /var/log/pods or /usr/libexec.

The kubelet tunes kernel settings at start (``vm.overcommit_memory=1``, ``kernel.panic=10``,
``kernel.panic_on_oops=1``, …) as on any node, and the bridge plugin turns on ``net.ipv4.ip_forward``. The values
from before are recorded once (:func:`record_kernel_settings`) and put back by teardown.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from pathlib import Path

from prenv.cluster import processes
from prenv.cluster.node.config import KubeletSettings, write_kubelet_config
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.errors import ClusterError

logger = logging.getLogger(__name__)

CGROUP_MOUNT_ROOT = Path("/sys/fs/cgroup")

# What the kubelet (setupKernelTunables) and the bridge CNI plugin change on the machine, under /proc/sys.
KERNEL_SETTINGS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
PROC_SYS = Path("/proc/sys")


def record_kernel_settings(layout: NodeLayout, proc_sys: Path = PROC_SYS) -> dict[str, str]:
    """Remember the current values, unless an earlier start already did (those are the machine's own)."""
    path = layout.kernel_settings
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    values = {key: (proc_sys / key).read_text().strip() for key in KERNEL_SETTINGS if (proc_sys / key).exists()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    return values


def restore_kernel_settings(layout: NodeLayout, proc_sys: Path = PROC_SYS) -> list[str]:
    """Write the recorded values back; return the settings that could not be restored."""
    try:
        values = json.loads(layout.kernel_settings.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    failed = []
    for key, value in values.items():
        target = proc_sys / key
        try:
            if target.read_text().strip() != value:
                target.write_text(f"{value}\n")
        except OSError:
            failed.append(key)
    return failed


def cgroup_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers, named ones, and the v2 ``unified`` one)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fstype = post.split(" ", 1)[0]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(pre.split()[4]))
    return sorted(set(found))


def ensure_cgroup_root(name: str) -> list[Path]:
    """Create ``/<name>`` in every cgroup hierarchy; return the directories."""
    made = []
    for hierarchy in cgroup_hierarchies():
        directory = hierarchy / name.strip("/")
        directory.mkdir(exist_ok=True)
        made.append(directory)
    return made


def remove_cgroup_root(name: str) -> list[Path]:
    """Remove ``/<name>`` and every cgroup below it from every hierarchy, deepest first; return what is left
    (a cgroup that still has processes cannot be removed)."""
    left = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name.strip("/")
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(directory)
        _rmdir(top)
        if top.exists():
            left.append(top)
    return left


def _rmdir(directory: Path) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        logger.debug("cannot remove cgroup %s: %s", directory, e.strerror)


def ensure_bridge(network: NodeNetwork) -> None:
    """Create the pod bridge with its gateway address and bring it up (a no-op when it is already there)."""
    net = ipaddress.ip_network(network.subnet)
    address = f"{network.gateway}/{net.prefixlen}"
    if not Path("/sys/class/net", network.bridge).exists():
        _ip("link", "add", "name", network.bridge, "type", "bridge")
    current = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", network.bridge], capture_output=True, text=True, check=False
    ).stdout
    if f" {address} " not in current:
        _ip("addr", "add", address, "dev", network.bridge)
    _ip("link", "set", network.bridge, "up")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")


class Kubelet:
    """One node's kubelet, started detached and stopped by pid like the cluster's other processes."""

    def __init__(
        self, layout: NodeLayout, network: NodeNetwork, *, node_name: str, kubeconfig: Path, settings: KubeletSettings
    ) -> None:
        self.layout = layout
        self.network = network
        self.node_name = node_name
        self.kubeconfig = kubeconfig
        self.settings = settings

    @property
    def pidfile(self) -> Path:
        return self.layout.kubelet_pidfile

    @property
    def log(self) -> Path:
        return self.layout.kubelet_log

    @property
    def root_dir(self) -> Path:
        return self.layout.kubelet_dir / "root"

    def argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--config={self.layout.kubelet_config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={self.root_dir}",
            f"--hostname-override={self.node_name}",
            f"--node-ip={self.network.gateway}",
            "--v=2",
        ]

    def pid(self) -> int | None:
        pid = processes.read_pidfile(self.pidfile)
        if pid is not None and processes.is_alive(pid, str(self.layout.kubelet_config)):
            return pid
        return None

    def start(self, binary: Path) -> int:
        """Put the prerequisites in place and start the kubelet (unless it runs); return its pid."""
        running = self.pid()
        if running is not None:
            return running
        ensure_bridge(self.network)
        ensure_cgroup_root(self.settings.cgroup_root)
        write_kubelet_config(self.layout, self.network, self.settings)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        return processes.spawn_detached(
            self.argv(binary), log=self.log, pidfile=self.pidfile, cwd=self.layout.kubelet_dir
        )

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the kubelet only: its pods keep running until teardown (as on a real node)."""
        pid = self.pid()
        if pid is not None:
            processes.terminate([(pid, str(self.layout.kubelet_config))], grace=grace)
        self.pidfile.unlink(missing_ok=True)
