"""Drives kwokctl's binary runtime: the one place that knows its command line, environment and files.

kwokctl already does what a hand-written process manager would (PKI, etcd data dir, argument sets per
Kubernetes version, detached processes with pidfiles and logs, ``delete`` that stops and removes them). We give
it every binary from the toolchain so it never downloads anything, pick the ports ourselves (see
``processes.free_ports``), keep its work dir inside our state dir, and never let it touch ``~/.kube/config``.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prenv.cluster.layout import ClusterLayout
from prenv.errors import ClusterError, ToolError

logger = logging.getLogger(__name__)

ToolPath = Callable[[str], Path]

KUBECTL = Path("/usr/bin/kubectl")
_VERSION_RE = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)\S*")
_STAGE_RE = re.compile(r"^kind:\s*Stage\s*$", re.MULTILINE)

# Every port kwokctl's binary runtime opens, by its option name in KwokctlConfiguration (and kwok.yaml). Set
# them all: one left at 0 is chosen by kwokctl counting down from 32767, the same for concurrent clusters. There
# is no command-line flag for etcdPeerPort, so they all go into an options file.
PORT_OPTIONS: tuple[str, ...] = (
    "kubeApiserverPort",
    "etcdPort",
    "etcdPeerPort",
    "kwokControllerPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
)
BIND_ADDRESS = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # room for 65,000 Services, as in kubeadm's default
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"

COMPONENT_ARGS: tuple[tuple[str, str, str], ...] = (
    # kube-apiserver's default service range is a /24: about 250 Services, 125 two-service environments.
    ("kube-apiserver", "service-cluster-ip-range", SERVICE_CIDR),
    # Reach a kubelet (logs, exec) at its node's InternalIP, never by resolving the node's name through the
    # machine's DNS (a lookup that leaves the machine and fails).
    ("kube-apiserver", "kubelet-preferred-address-types", "InternalIP"),
    # KWOK fakes the status of its own nodes and their pods only; by default (kwokctl passes
    # --manage-all-nodes=true, which these later flags override) it also fakes a real node's, giving its pods
    # made-up addresses off this machine. Our fake nodes carry the annotation (prenv.cluster.bootstrap).
    ("kwok-controller", "manage-all-nodes", "false"),
    ("kwok-controller", "manage-nodes-with-annotation-selector", FAKE_NODE_ANNOTATION),
)
"""``(component, flag, value)`` added to kwokctl's own flags. In the options file (``componentsPatches``), not as
``--extra-args``: kwokctl 0.8 panics ("index out of range") with four ``--extra-args``."""


@dataclass(frozen=True, slots=True)
class Toolset:
    """Every binary kwokctl needs and Traefik (which we start ourselves), plus what we learned from them."""

    kwokctl: Path
    kwok: Path
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    traefik: Path
    kube_version: str
    stage_configs: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Component:
    """One process kwokctl started, as kwok.yaml records it."""

    name: str
    binary: Path
    pidfile: Path


@dataclass(frozen=True, slots=True)
class KwokRecord:
    """What we read back from kwok.yaml: the ports every component got and the components themselves."""

    ports: Mapping[str, int]
    components: tuple[Component, ...]


def _default_tool_path(name: str) -> Path:
    # Imported late: the toolchain is a sibling area and may not be importable (or built) yet.
    try:
        tool_path = importlib.import_module("prenv.toolchain").tool_path
    except (ImportError, AttributeError) as e:
        raise ToolError(f"{name}: prenv.toolchain.tool_path is unavailable; run `make tools`") from e
    return Path(tool_path(name))


def resolve_toolset(tool_path: ToolPath | None = None) -> Toolset:
    """Find every binary through the toolchain; raises ToolError naming the first one that is missing."""
    find = tool_path or _default_tool_path
    kube_apiserver = find("kube-apiserver")
    kwok = find("kwok")
    stages = stage_configs(kwok.resolve().parent)
    check_stages(kwok, stages)
    return Toolset(
        kwokctl=find("kwokctl"),
        kwok=kwok,
        etcd=find("etcd"),
        kube_apiserver=kube_apiserver,
        kube_controller_manager=find("kube-controller-manager"),
        kube_scheduler=find("kube-scheduler"),
        kubectl=_kubectl(find),
        traefik=find("traefik"),
        kube_version=binary_version(kube_apiserver),
        stage_configs=stages,
    )


def _kubectl(find: ToolPath) -> Path:
    try:
        return find("kubectl")
    except ToolError:
        pass
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    if KUBECTL.exists():
        return KUBECTL
    raise ToolError("kubectl: not found on PATH; install Debian's kubectl")


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION_RE.search(text)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def _version_output(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        raise ToolError(f"{binary.name}: cannot run {binary}: {e.strerror}") from e
    return (out.stdout + out.stderr).strip()


def binary_version(binary: Path) -> str:
    """``vX.Y.Z`` as a Kubernetes binary's ``--version`` reports it.

    kwokctl derives every component's flags from this version, so an unstamped build (``v0.0.0-master``)
    would silently get flags for an ancient Kubernetes; refuse it here.
    """
    output = _version_output(binary)
    version = parse_version(output)
    if version is None or version[0] == 0:
        raise ToolError(f"{binary.name}: {binary} reports no usable version ({output!r})")
    return "v{}.{}.{}".format(*version)


def check_stages(kwok: Path, stages: tuple[Path, ...]) -> None:
    """kwok >= 0.8 ships no built-in stages: without them nodes never turn Ready and pods never run or go."""
    version = parse_version(_version_output(kwok))
    if version is not None and version >= (0, 8, 0) and not stages:
        raise ToolError(
            f"kwok: {kwok} is v{version[0]}.{version[1]}.{version[2]} but no KWOK Stage files are next to it "
            "(node-initialize, pod-ready, pod-delete...); run `make tools`"
        )


STAGE_SET = Path("stages") / "fast"
"""kwok's default behaviour (node-initialize, node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete), as
the toolchain copies kwok's ``kustomize/stage`` tree next to the binary."""


def stage_configs(directory: Path) -> tuple[Path, ...]:
    """KWOK Stage files for the kwok binary in ``directory`` (kwok >= 0.8 no longer embeds default stages).

    The ``stages/fast`` kustomization if it is there (its ``resources`` followed, no kustomize needed), else
    any Stage document directly next to the binary.
    """
    if (directory / STAGE_SET / "kustomization.yaml").is_file():
        return tuple(p for p in _kustomize_resources(directory / STAGE_SET) if _is_stage(p))
    return tuple(p for p in sorted(directory.glob("*.y*ml")) if _is_stage(p))


def _kustomize_resources(directory: Path, seen: frozenset[Path] = frozenset()) -> list[Path]:
    directory = directory.resolve()
    if directory in seen:
        return []
    try:
        document = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ToolError(f"kwok: cannot read stages from {directory / 'kustomization.yaml'}") from e
    files: list[Path] = []
    for entry in document.get("resources") or []:
        path = directory / str(entry)
        if path.is_dir():
            files += _kustomize_resources(path, seen | {directory})
        elif path.is_file():
            files.append(path.resolve())
        else:
            raise ToolError(f"kwok: {path} is listed in {directory / 'kustomization.yaml'} but missing")
    return files


def _is_stage(path: Path) -> bool:
    try:
        return bool(_STAGE_RE.search(path.read_text()))
    except (OSError, UnicodeDecodeError):
        return False


def environment(layout: ClusterLayout, tools: Toolset, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """kwokctl's environment: our work dir and a local binary for every component, so nothing is downloaded."""
    env = dict(os.environ if base is None else base)
    # A caller's KUBECONFIG must not leak into kwokctl's kubectl calls or context handling.
    env.pop("KUBECONFIG", None)
    env.update(
        {
            "KWOK_WORKDIR": str(layout.root),
            "KWOK_RUNTIME": "binary",
            "KWOK_KUBE_VERSION": tools.kube_version,
            "KWOK_KUBE_APISERVER_BINARY": str(tools.kube_apiserver),
            "KWOK_KUBE_CONTROLLER_MANAGER_BINARY": str(tools.kube_controller_manager),
            "KWOK_KUBE_SCHEDULER_BINARY": str(tools.kube_scheduler),
            "KWOK_ETCD_BINARY": str(tools.etcd),
            "KWOK_CONTROLLER_BINARY": str(tools.kwok),
            "KWOK_KUBECTL_BINARY": str(tools.kubectl),
        }
    )
    return env


def options_document(
    ports: Mapping[str, int], pki_dir: Path | None = None, advertise_address: str | None = None
) -> str:
    """The KwokctlConfiguration we pass with ``--config``: fixed ports, loopback only (kwokctl's default binds
    every component to 0.0.0.0), and our component flags (``COMPONENT_ARGS``). With ``pki_dir`` (kwokctl's
    certificates, made before the apiserver starts), the apiserver presents the admin certificate to kubelets, which
    trust the cluster CA and authorize through the apiserver: ``kubectl logs``, ``exec`` and ``port-forward`` work on
    a real node. With ``advertise_address`` (the real node's bridge address) the ``kubernetes`` Service points
    there, where Traefik relays to the loopback-only apiserver (prenv.cluster.traefik): pods reach the API."""
    unknown = set(ports) - set(PORT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown port options: {sorted(unknown)}")
    options: dict[str, object] = {"bindAddress": BIND_ADDRESS, **ports}
    patches: dict[str, list[dict[str, str]]] = {}
    args = list(COMPONENT_ARGS)
    if pki_dir is not None:
        args += [
            ("kube-apiserver", "kubelet-client-certificate", str(pki_dir / "admin.crt")),
            ("kube-apiserver", "kubelet-client-key", str(pki_dir / "admin.key")),
        ]
    if advertise_address is not None:
        args.append(("kube-apiserver", "advertise-address", advertise_address))
    for component, key, value in args:
        patches.setdefault(component, []).append({"key": key, "value": value})
    document = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
        "componentsPatches": [{"name": name, "extraArgs": args} for name, args in patches.items()],
    }
    return yaml.safe_dump(document, sort_keys=False)


def create_command(layout: ClusterLayout, tools: Toolset, *, dry_run: bool = False) -> Command:
    """``kwokctl create cluster`` for ``layout``, reading ``layout.kwokctl_options`` (see ``options_document``).

    Authorization and admission are requested explicitly although they are kwokctl's defaults today: without
    ``--kube-admission`` kwokctl passes ``--admission-control=`` and the apiserver runs no admission plugin at
    all (no ResourceQuota, LimitRanger, NamespaceLifecycle). ``--config`` replaces kwokctl's default config
    search (``~/.kwok/kwok.yaml``), so nothing of the user's leaks in, and ``--kubeconfig ""`` keeps kwokctl
    away from ``~/.kube/config``.
    """
    argv: list[str] = [
        str(tools.kwokctl),
        "create",
        "cluster",
        "--name",
        layout.name,
        "--runtime",
        "binary",
        "--kubeconfig",
        "",
        "--secure-port=true",
        "--kube-authorization=true",
        "--kube-admission=true",
        # kwokctl polls until the apiserver serves; we wait for readiness ourselves, with a better error.
        "--timeout",
        "180s",
        "--config",
        str(layout.kwokctl_options),
    ]
    for config in tools.stage_configs:
        argv += ["--config", str(config)]
    if dry_run:
        argv.append("--dry-run")
    return Command(tuple(argv), environment(layout, tools))


def delete_command(layout: ClusterLayout, tools: Toolset) -> Command:
    return Command(
        (str(tools.kwokctl), "delete", "cluster", "--name", layout.name, "--kubeconfig", ""),
        environment(layout, tools),
    )


def start_command(layout: ClusterLayout, tools: Toolset) -> Command:
    return Command((str(tools.kwokctl), "start", "cluster", "--name", layout.name), environment(layout, tools))


def run(command: Command, log: Path, *, timeout: float, what: str) -> str:
    """Run a kwokctl command, appending its output to ``log``; ClusterError (with the output's tail) on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        out = subprocess.run(
            list(command.argv), env=dict(command.env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"{what} did not finish within {timeout:.0f}s; see {log}") from e
    except OSError as e:
        raise ToolError(f"kwokctl: cannot run {command.argv[0]}: {e.strerror}") from e
    text = out.stdout + out.stderr
    with log.open("a") as f:
        f.write(f"$ {' '.join(command.argv)}\n{text}(exit {out.returncode} after {time.monotonic() - started:.1f}s)\n")
    if out.returncode != 0:
        raise ClusterError(f"{what} failed (exit {out.returncode}); see {log}:\n{tail(text)}")
    return text


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def read_record(layout: ClusterLayout) -> KwokRecord | None:
    """Parse kwok.yaml; None if the cluster was never created (or its directory is gone)."""
    try:
        raw = layout.kwok_config.read_text()
    except OSError:
        return None
    try:
        docs = [d for d in yaml.safe_load_all(raw) if isinstance(d, dict)]
    except yaml.YAMLError as e:
        raise ClusterError(f"{layout.kwok_config} is not valid YAML") from e
    doc: dict[str, Any] = next((d for d in docs if d.get("kind") == "KwokctlConfiguration"), {})
    options = doc.get("options") or {}
    ports = {key: int(options[key]) for key in PORT_OPTIONS if int(options.get(key) or 0) > 0}
    components = []
    for item in doc.get("components") or []:
        binary = Path(str(item.get("binary") or ""))
        if not binary.name:
            continue
        components.append(Component(str(item.get("name")), binary, layout.pids_dir / f"{binary.stem}.pid"))
    return KwokRecord(ports, tuple(components))


def component_logs(layout: ClusterLayout, lines: int = 10) -> str:
    """The tail of every component log, for error messages."""
    parts = []
    for log in sorted(layout.logs_dir.glob("*.log")):
        try:
            parts.append(f"--- {log.name}\n{tail(log.read_text(errors='replace'), lines)}")
        except OSError:
            continue
    return "\n".join(parts)
