"""Typed records the embedded cluster hands to its callers (CLI, pytest fixture, demo).

They are the only things that leave ``prenv.cluster``: kwokctl's YAML, pidfiles and Kubernetes client objects
stay inside the package.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class ClusterState(enum.StrEnum):
    """What ``prenv cluster status`` reports.

    ``running``: every process is alive and the apiserver answers ``/readyz``.
    ``stopped``: no process is alive (never created, taken down, or the machine rebooted).
    ``broken``: some processes are alive but not all, or the apiserver does not answer.
    """

    RUNNING = "running"
    STOPPED = "stopped"
    BROKEN = "broken"


@dataclass(frozen=True, slots=True)
class IngressPorts:
    """Where the cluster's ingress controller (Traefik) listens on 127.0.0.1."""

    http: int
    https: int


class NodeKinds(enum.StrEnum):
    """Which nodes ``prenv cluster up --nodes`` starts: a real node (kubelet on containerd), KWOK's fake ones, both."""

    REAL = "real"
    KWOK = "kwok"
    BOTH = "both"

    @property
    def real(self) -> bool:
        return self in (NodeKinds.REAL, NodeKinds.BOTH)

    @property
    def kwok(self) -> bool:
        return self in (NodeKinds.KWOK, NodeKinds.BOTH)


@dataclass(frozen=True, slots=True)
class NodeCounts:
    """How many nodes of each kind the cluster has: ``real`` run containers (kubelet), ``kwok`` are simulated."""

    real: int = 0
    kwok: int = 0


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The state of one embedded cluster; ``detail`` says why it is broken (empty otherwise), ``missing`` names
    the processes that are not running when some others are. ``ca`` and ``ingress`` are None until the cluster
    has been created."""

    state: ClusterState
    kubeconfig: Path
    server: str | None
    detail: str = ""
    missing: tuple[str, ...] = ()
    ca: Path | None = None
    ingress: IngressPorts | None = None
    nodes: NodeCounts = NodeCounts()

    def as_dict(self) -> dict[str, object]:
        """The ``prenv cluster status --json`` contract (shared/DESIGN.md): ``state``, ``kubeconfig``, ``server``,
        ``ca`` (path of the local CA certificate), ``ingress`` (``{"http": port, "https": port}`` on 127.0.0.1) and
        ``nodes`` (``{"real": n, "kwok": n}``)."""
        return {
            "state": self.state.value,
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ca": str(self.ca) if self.ca else None,
            "ingress": {"http": self.ingress.http, "https": self.ingress.https} if self.ingress else None,
            "nodes": {"real": self.nodes.real, "kwok": self.nodes.kwok},
        }


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A running embedded cluster: how to reach it and what it is made of.

    ``ports`` are every TCP port its processes listen on (apiserver, etcd client and peer, controllers, Traefik),
    so that a caller can check ``down`` released them. ``ingress`` are Traefik's HTTP and HTTPS ports on 127.0.0.1,
    ``ca`` the local CA certificate that signs the wildcard certificates (``EmbeddedCluster.wildcard_certificate``).
    """

    name: str
    kubeconfig: Path
    server: str
    context: str
    state_dir: Path
    ports: tuple[int, ...]
    nodes: tuple[str, ...]
    ingress_class: str
    ingress_ip: str
    ingress: IngressPorts
    ca: Path
