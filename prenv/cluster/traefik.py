"""Traefik as the embedded cluster's ingress controller: its static configuration and how it is started.

``prenv cluster up`` runs Traefik as a host process next to the control plane (detached, with a pidfile, like
kwokctl's components). Its Kubernetes Ingress provider watches the embedded apiserver, through the cluster's
kubeconfig (``KUBECONFIG``: client-certificate auth, which the provider's own endpoint/token options lack), and
serves the Ingresses of the cluster's IngressClass:

- entryPoints ``web`` (HTTP) and ``websecure`` (HTTPS, TLS on every router) on free ports of 127.0.0.1, chosen
  once and kept in the config file so a restarted cluster serves on the same ports;
- certificates from each Ingress's TLS Secret, picked by SNI (Traefik's own self-signed one otherwise);
- ``status.loadBalancer.ingress[0].ip`` published on every Ingress it serves (``ingressEndpoint.ip``), which is
  what pulumi-kubernetes and ``kubectl wait`` take as "ready";
- no dashboard or API (the module's ``webui/static`` is only a placeholder), no ping/metrics entryPoint, no
  version check or anonymous usage report; logs to ``traefik.log`` in the cluster's directory.

With a real node, Traefik is also how pods reach the API server, which listens on 127.0.0.1 only: an entryPoint
``kube-apiserver`` on the node's bridge address and the apiserver's own port relays raw TCP (TLS untouched, so
client certificates and ServiceAccount tokens work as they are) to 127.0.0.1, and the apiserver advertises the
bridge address, so the ``kubernetes`` Service leads there. Nothing outside the machine can reach the bridge.
That TCP route is in a second, file-provider config (``relay_config``).

Traefik reads either a config file or command-line flags, never both, so everything is in the file and the
command line is only ``--configFile``. That path is unique per cluster, which is also how ``status`` and
``down`` recognise the process (pids get reused).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from prenv.cluster.records import IngressPorts

WEB = "web"
WEBSECURE = "websecure"
APISERVER = "kube-apiserver"
BIND_ADDRESS = "127.0.0.1"
# Traefik applies a provider's new configuration at most this often (its default, 2s, would make every new
# Ingress wait for up to 2s before it routes).
PROVIDERS_THROTTLE = "200ms"
# How long Traefik lets open connections finish on SIGTERM (default 10s): keeps `down` quick.
GRACE_TIMEOUT = "2s"


def static_config(
    *,
    ingress_class: str,
    ingress_ip: str,
    ports: IngressPorts,
    log: Path,
    relay: tuple[str, int, Path] | None = None,
) -> dict[str, Any]:
    """Traefik's static configuration for one cluster. ``relay`` is ``(bridge address, apiserver port, path of the
    relay's dynamic config)`` when pods must reach the apiserver (a real node)."""

    def entry_point(port: int) -> dict[str, Any]:
        return {
            "address": f"{BIND_ADDRESS}:{port}",
            "transport": {"lifeCycle": {"graceTimeOut": GRACE_TIMEOUT}},
        }

    websecure = entry_point(ports.https)
    websecure["http"] = {"tls": {}}
    entry_points = {WEB: entry_point(ports.http), WEBSECURE: websecure}
    providers: dict[str, Any] = {
        "providersThrottleDuration": PROVIDERS_THROTTLE,
        "kubernetesIngress": {
            # Only IngressClasses naming traefik.io/ingress-controller are considered; of those, this one.
            "ingressClass": ingress_class,
            "ingressEndpoint": {"ip": ingress_ip},
        },
    }
    if relay is not None:
        address, port, dynamic = relay
        entry_points[APISERVER] = {
            "address": f"{address}:{port}",
            "transport": {"lifeCycle": {"graceTimeOut": GRACE_TIMEOUT}},
        }
        providers["file"] = {"filename": str(dynamic), "watch": False}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO", "filePath": str(log), "noColor": True},
        "entryPoints": entry_points,
        "providers": providers,
    }


def relay_config(apiserver_port: int) -> dict[str, Any]:
    """The TCP route of the ``kube-apiserver`` entryPoint: every connection, bytes as they are, to the apiserver
    on 127.0.0.1 (``HostSNI(`*`)`` without ``tls`` is Traefik's raw TCP forwarding)."""
    return {
        "tcp": {
            "routers": {
                APISERVER: {"entryPoints": [APISERVER], "rule": "HostSNI(`*`)", "service": APISERVER},
            },
            "services": {
                APISERVER: {"loadBalancer": {"servers": [{"address": f"{BIND_ADDRESS}:{apiserver_port}"}]}},
            },
        }
    }


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))


def read_ports(path: Path) -> IngressPorts | None:
    """The entryPoint ports recorded in a config file; None if there is none (yet) or it is not ours."""
    try:
        config = yaml.safe_load(path.read_text())
        points = config["entryPoints"]
        return IngressPorts(
            http=_port(points[WEB]["address"]),
            https=_port(points[WEBSECURE]["address"]),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def _port(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def command(binary: Path, config: Path) -> list[str]:
    """The argv ``up`` starts Traefik with."""
    return [str(binary), f"--configFile={config}"]


def marker(config: Path) -> str:
    """What identifies this cluster's Traefik in ``/proc/<pid>/cmdline``."""
    return f"--configFile={config}"


def environment(kubeconfig: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Traefik's environment: the provider reads ``KUBECONFIG``. ``KUBERNETES_SERVICE_*`` (set when prenv itself
    runs in a pod) would make it use the in-cluster client instead, talking to the wrong cluster."""
    env = dict(os.environ if base is None else base)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.pop("KUBERNETES_SERVICE_PORT", None)
    env["KUBECONFIG"] = str(kubeconfig)
    return env
