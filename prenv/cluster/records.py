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
class ClusterStatus:
    """The state of one embedded cluster; ``detail`` says why it is broken (empty otherwise), ``missing`` names
    the processes that are not running when some others are."""

    state: ClusterState
    kubeconfig: Path
    server: str | None
    detail: str = ""
    missing: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str | None]:
        """The ``prenv cluster status --json`` contract: exactly these three keys."""
        return {"state": self.state.value, "kubeconfig": str(self.kubeconfig), "server": self.server}


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A running embedded cluster: how to reach it and what it is made of.

    ``ports`` are every TCP port its processes listen on (apiserver, etcd client and peer, controllers), so that
    a caller can check ``down`` released them.
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
