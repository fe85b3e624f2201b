"""Publishes Ingress load-balancer status, the one part of an ingress controller the embedded cluster needs.

Nothing serves traffic in the embedded cluster, but pulumi-kubernetes (like ``kubectl wait``) treats an Ingress
as ready only once ``status.loadBalancer.ingress`` is set, so without a controller every Ingress would wait
until its timeout. This process watches Ingresses of one class (``nginx`` by default, plus class-less ones
when that class is the cluster default) and sets ``status.loadBalancer.ingress[0].ip`` as ingress-nginx would.

Run by ``prenv cluster up``, detached, one per cluster::

    python -m prenv.cluster.ingress_publisher --kubeconfig PATH [--class nginx] [--ip 127.0.0.1]

It lists, then watches from the list's resourceVersion, and relists every ``--resync`` seconds so a missed
event costs at most that long. It exits on SIGTERM, and by itself once its kubeconfig is gone (the cluster was
removed), so it can never outlive its cluster for long.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

logger = logging.getLogger(__name__)

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
MODULE = "prenv.cluster.ingress_publisher"


def ingress_class_of(ingress: client.V1Ingress) -> str | None:
    """The class an Ingress asks for: ``spec.ingressClassName``, else the legacy annotation."""
    if ingress.spec is not None and ingress.spec.ingress_class_name:
        return str(ingress.spec.ingress_class_name)
    annotations = (ingress.metadata.annotations if ingress.metadata else None) or {}
    legacy = annotations.get(CLASS_ANNOTATION)
    return str(legacy) if legacy else None


def is_ours(ingress: client.V1Ingress, class_name: str, class_is_default: bool) -> bool:
    wanted = ingress_class_of(ingress)
    return wanted == class_name or (wanted is None and class_is_default)


def current_addresses(ingress: client.V1Ingress) -> list[tuple[str | None, str | None]]:
    lb = ingress.status.load_balancer if ingress.status else None
    return [(i.ip, i.hostname) for i in (lb.ingress if lb and lb.ingress else [])]


def status_patch(ip: str) -> dict[str, Any]:
    return {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


class Publisher:
    """Keeps the status of every Ingress of one class at ``ip``."""

    def __init__(
        self,
        networking: client.NetworkingV1Api,
        *,
        class_name: str,
        ip: str,
        resync: float,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._net = networking
        self._class = class_name
        self._ip = ip
        self._resync = resync
        self._should_stop = should_stop
        self._class_is_default = False

    def reconcile(self, ingress: client.V1Ingress) -> bool:
        """Patch one Ingress if it is ours and its status differs; returns whether it patched."""
        if not is_ours(ingress, self._class, self._class_is_default):
            return False
        if current_addresses(ingress) == [(self._ip, None)]:
            return False
        name, namespace = ingress.metadata.name, ingress.metadata.namespace
        try:
            self._net.patch_namespaced_ingress_status(name, namespace, status_patch(self._ip))
        except ApiException as e:
            if e.status == 404:  # deleted meanwhile
                return False
            raise
        logger.info("published %s for ingress %s/%s", self._ip, namespace, name)
        return True

    def relist(self) -> str:
        """Reconcile every Ingress; returns the resourceVersion to watch from."""
        try:
            klass = self._net.read_ingress_class(self._class)
            annotations = klass.metadata.annotations or {}
            self._class_is_default = annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        except ApiException as e:
            if e.status != 404:
                raise
            self._class_is_default = False
        listing = self._net.list_ingress_for_all_namespaces()
        for ingress in listing.items:
            self.reconcile(ingress)
        return str(listing.metadata.resource_version)

    def run_once(self) -> None:
        """One list, then one watch until ``resync`` elapses or the watch ends."""
        version = self.relist()
        stream = watch.Watch().stream(
            self._net.list_ingress_for_all_namespaces,
            resource_version=version,
            timeout_seconds=max(1, int(self._resync)),
            _request_timeout=self._resync + 10,
        )
        for event in stream:
            if event["type"] in ("ADDED", "MODIFIED"):
                self.reconcile(event["object"])
            if self._should_stop():
                return

    def run(self) -> None:
        """Forever (until ``should_stop``): relist+watch; errors are logged and retried after a pause."""
        while not self._should_stop():
            try:
                self.run_once()
            except ApiException as e:
                logger.warning("API error %s %s; relisting", e.status, e.reason)
                time.sleep(1)
            except (HTTPError, OSError) as e:
                logger.warning("apiserver unreachable (%s); retrying", type(e).__name__)
                time.sleep(1)


def command(kubeconfig: Path, class_name: str, ip: str) -> list[str]:
    """The argv ``up`` starts the publisher with."""
    return [sys.executable, "-m", MODULE, "--kubeconfig", str(kubeconfig), "--class", class_name, "--ip", ip]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--class", dest="class_name", default="nginx")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--resync", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)

    from prenv.cluster.bootstrap import api_client

    kubeconfig: Path = args.kubeconfig
    api = api_client(kubeconfig)
    publisher = Publisher(
        client.NetworkingV1Api(api),
        class_name=args.class_name,
        ip=args.ip,
        resync=args.resync,
        should_stop=lambda: not kubeconfig.exists(),
    )
    logger.info("publishing %s for ingresses of class %s", args.ip, args.class_name)
    publisher.run()
    logger.info("kubeconfig %s is gone; exiting", kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
