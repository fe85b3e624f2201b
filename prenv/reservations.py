"""What an environment reserves from the cluster (its CPU and memory *requests*) and for how long it has run.

Why the namespace's ResourceQuota: every environment's namespace has one (components/namespace.py), and the API
server keeps its ``status.used`` (``requests.cpu``, ``requests.memory``) equal to the sum of the requests of the
namespace's live pods, whatever made them (the built-in services, a Helm chart, Kustomize, a LimitRange default).
Adding up the template's numbers would be wrong for any chart; listing pods would cost a page per environment.
So it is one ``GET`` of one object per environment, made only when asked: after an up (for the PR comment and the
gauge, which keeps the last value) and by ``prenv list``; never on the idle resync.

A cluster that cannot be asked (no kubeconfig, unreachable, forbidden, no quota yet) is *unknown* (None), never an
error: cost is information, not a reason to fail an operation or a listing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prenv import naming

logger = logging.getLogger(__name__)

QUOTA_NAME = "prenv-quota"
"""The ResourceQuota every environment's namespace has (components/namespace.py)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The CPU (cores) and memory (bytes) the pods of one environment request."""

    cpu_cores: float
    memory_bytes: int

    def summary(self) -> str:
        """E.g. ``0.1 CPU, 64 MiB memory``."""
        return f"{_cores(self.cpu_cores)} CPU, {_bytes(self.memory_bytes)} memory"

    def as_dict(self) -> dict[str, float | int]:
        """The ``prenv list --json`` record."""
        return {"cpu_cores": self.cpu_cores, "memory_bytes": self.memory_bytes}


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity (``500m``, ``1``, ``128Mi``, ``1Gi``, ``1e3``, ``1.5k``…) as a number.

    Raises:
        ValueError: not a quantity.
    """
    from kubernetes.utils.quantity import parse_quantity as parse

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    parsed: Decimal = parse(value)
    return parsed


def reservation_of(used: Mapping[str, Any]) -> Reservation:
    """The reservation a quota's ``status.used`` states; an absent resource is zero (no pod requests it).

    Raises:
        ValueError: a value is not a quantity.
    """
    cpu = parse_quantity(used.get("requests.cpu", "0"))
    memory = parse_quantity(used.get("requests.memory", "0"))
    return Reservation(cpu_cores=float(cpu), memory_bytes=int(memory.to_integral_value(rounding="ROUND_CEILING")))


def running_seconds(created_at: datetime | None, now: datetime) -> int | None:
    """Seconds since the stack was created (its first deployment), or None when unknown."""
    return None if created_at is None else max(0, int((now - created_at).total_seconds()))


def human_duration(seconds: int) -> str:
    """``2d 3h``, ``5h 12m``, ``7m``, ``40s``."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


class QuotaReader:
    """Reads the reservation of an environment from its namespace's ResourceQuota (one API call).

    Args:
        namespace_prefix: the template's ``prenv:namespacePrefix``.
        env: the environment of the pulumi runs (the gateway's): the cluster is the one the program deploys to,
            ``KUBECONFIG`` there, else the in-cluster service account (``KUBERNETES_SERVICE_HOST``); neither: unknown.
        api: a ``kubernetes.client.ApiClient`` to use instead (built from ``env`` on first use otherwise).
        timeout: seconds per request.
    """

    def __init__(
        self, namespace_prefix: str = "", *, env: Mapping[str, str] | None = None, api: Any = None, timeout: float = 5.0
    ) -> None:
        self.namespace_prefix = naming.check_namespace_prefix(namespace_prefix)
        self.timeout = timeout
        self._env = dict(env or {})
        self._api = api
        self._guard = threading.Lock()
        self._unavailable = False

    def namespace_of(self, stack: str) -> str | None:
        """The namespace of ``pr-<n>`` / ``br-<slug>-<digits>``, or None for another name."""
        parsed = naming.parse_stack(stack)
        if parsed is None:
            return None
        return naming.namespace(parsed.number, self.namespace_prefix, parsed.slug)

    def read(self, stack: str) -> Reservation | None:
        """What the environment of ``stack`` reserves, or None when unknown (see the module docstring)."""
        namespace = self.namespace_of(stack)
        core = self._core()
        if namespace is None or core is None:
            return None
        try:
            quota = core.read_namespaced_resource_quota(QUOTA_NAME, namespace, _request_timeout=self.timeout)
            used = (quota.status.used if quota.status is not None else None) or {}
            return reservation_of(used)
        except Exception as e:  # any answer but a quota (404, 403, network, a bad quantity) is unknown
            logger.info("%s: reserved resources unknown (%s)", stack, _why(e))
            return None

    def _core(self) -> Any:
        with self._guard:
            if self._api is None and not self._unavailable:
                self._api = _api_for(self._env)
                self._unavailable = self._api is None
            if self._api is None:
                return None
            from kubernetes import client

            return client.CoreV1Api(self._api)


def _api_for(env: Mapping[str, str]) -> Any:
    """A client for the cluster the pulumi program deploys to, as prenv.gateway.rollout finds it; None: no cluster."""
    from kubernetes import client, config

    try:
        if env.get("KUBECONFIG"):
            return config.new_client_from_config(config_file=env["KUBECONFIG"].split(":")[0])
        if env.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            return client.ApiClient()
    except Exception as e:  # an unreadable kubeconfig: every reservation is unknown
        logger.info("no usable Kubernetes configuration (%s): reserved resources are unknown", type(e).__name__)
        return None
    logger.info("no Kubernetes configuration (KUBECONFIG or in-cluster): reserved resources are unknown")
    return None


def _why(e: Exception) -> str:
    status = getattr(e, "status", None)
    return f"HTTP {status}" if isinstance(status, int) else type(e).__name__


def _cores(cores: float) -> str:
    return f"{cores:.3f}".rstrip("0").rstrip(".") or "0"


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


ReadReservation = Callable[[str], Reservation | None]
"""A stack name → its reservation (``QuotaReader.read``)."""
