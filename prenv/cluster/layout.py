"""Where one embedded cluster keeps its files, computed in one place.

Everything a cluster owns lives under ``<state dir>/cluster/<name>/``: kwokctl's work dir (PKI, etcd data,
pidfiles, component logs, the kubeconfig), Traefik's config, pidfile and log, and the local CA with the wildcard
certificates it signed. ``down`` removes
that directory and nothing else, and several clusters (one per pytest-xdist worker) never share a file.

    <state dir>/cluster/
    ├── .<name>.lock                    serialises up/down of one cluster
    └── <name>/                         KWOK_WORKDIR
        ├── kwokctl.yaml                options we pass to kwokctl create (ports, bind address)
        ├── kwokctl.log                 output of our kwokctl invocations
        ├── traefik.yaml|.pid|.log      the ingress controller's static config (its ports), pid and log
        ├── tls/                        local CA (ca.crt, ca.key) and wildcard.<base domain>.crt|.key; keys 0600
        └── clusters/<name>/            kwokctl's cluster dir
            ├── kwok.yaml               kwokctl's record: options (ports) and components (binaries, args)
            ├── kubeconfig.yaml         what callers use
            ├── pids/<component>.pid
            └── logs/<component>.log
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from prenv.errors import ConfigError

DEFAULT_NAME = "prenv"

# The name becomes a directory and part of kwokctl's context name ("kwok-<name>"); keep it a short DNS label so
# that it is safe everywhere it travels.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def default_state_dir() -> Path:
    """``$PRENV_STATE_DIR`` if set, else ``.state`` at the root of the checkout."""
    configured = os.environ.get("PRENV_STATE_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / ".state"


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(
            "cluster name", f"{name!r} must be 1-40 characters of a-z, 0-9 and '-', alphanumeric at both ends"
        )
    return name


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """Paths of one cluster. Pure: computing them touches no file."""

    name: str
    state_dir: Path

    @classmethod
    def of(cls, name: str = DEFAULT_NAME, state_dir: Path | None = None) -> ClusterLayout:
        return cls(validate_name(name), (state_dir or default_state_dir()).resolve())

    @property
    def root(self) -> Path:
        """Our directory for this cluster; also kwokctl's ``KWOK_WORKDIR``."""
        return self.state_dir / "cluster" / self.name

    @property
    def lock_file(self) -> Path:
        # Outside root, so that removing root while holding the lock is fine.
        return self.state_dir / "cluster" / f".{self.name}.lock"

    @property
    def kwok_cluster_dir(self) -> Path:
        return self.root / "clusters" / self.name

    @property
    def kwok_config(self) -> Path:
        return self.kwok_cluster_dir / "kwok.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.kwok_cluster_dir / "kubeconfig.yaml"

    @property
    def pki_dir(self) -> Path:
        """kwokctl's certificates: ``ca.crt`` (the cluster CA) and ``admin.crt``/``admin.key`` (system:masters)."""
        return self.kwok_cluster_dir / "pki"

    @property
    def pids_dir(self) -> Path:
        return self.kwok_cluster_dir / "pids"

    @property
    def logs_dir(self) -> Path:
        return self.kwok_cluster_dir / "logs"

    @property
    def kwokctl_options(self) -> Path:
        """The KwokctlConfiguration (ports, bind address) we hand to ``kwokctl create cluster``."""
        return self.root / "kwokctl.yaml"

    @property
    def kwokctl_log(self) -> Path:
        return self.root / "kwokctl.log"

    @property
    def traefik_config(self) -> Path:
        return self.root / "traefik.yaml"

    @property
    def traefik_pidfile(self) -> Path:
        return self.root / "traefik.pid"

    @property
    def traefik_log(self) -> Path:
        return self.root / "traefik.log"

    @property
    def node_dir(self) -> Path:
        """The real node's files (``prenv.cluster.node.NodeLayout``), when the cluster has one."""
        return self.root / "node"

    @property
    def nodes_file(self) -> Path:
        """Which kinds of nodes the cluster was created with, so that ``status`` and ``down`` know them too."""
        return self.root / "nodes.json"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def ca_cert(self) -> Path:
        """The local CA certificate; clients trust it to verify what Traefik serves."""
        return self.tls_dir / "ca.crt"

    @property
    def context(self) -> str:
        """The kubeconfig context kwokctl writes."""
        return f"kwok-{self.name}"
