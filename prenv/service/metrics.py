"""Prometheus metrics of the service, in a registry of its own (tests and embedders get no global state).

Values that already live elsewhere (environments by status, queue depth, the GitHub rate limit) are read at
scrape time by a collector rather than copied into gauges, so they are never stale. Label values come from fixed
sets (statuses, action kinds, known event names, results), never from request or PR text.
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from prenv.model import Drift, EnvStatus, StackState
from prenv.reconcile import Outcome, status_of
from prenv.reservations import Reservation

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RateLimitView(Protocol):
    """What a rate limit record offers (prenv.sources.github.RateLimit)."""

    @property
    def remaining(self) -> int: ...

    @property
    def reset(self) -> datetime: ...


class ServiceMetrics:
    """Every metric ``/metrics`` exposes.

    Args:
        environments: the stacks as last known.
        busy: PRs with an operation in flight (shown as ``updating``).
        queue_depth: PRs waiting in the work queue.
        rate_limit: the GitHub rate limit last seen, or None (another source, or no request yet).
    """

    def __init__(
        self,
        *,
        environments: Callable[[], Iterable[StackState]] = tuple,
        busy: Callable[[], Iterable[int]] = tuple,
        queue_depth: Callable[[], int] = lambda: 0,
        rate_limit: Callable[[], RateLimitView | None] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter(
            "prenv_operations",
            "Stack operations by kind (create, update, destroy) and outcome (ok, failed, skipped).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "prenv_operation_failures",
            "Failed stack operations by kind (create, update, destroy) and retry (temporary: retried with backoff; "
            "permanent: reported, an up waits for a change, a destroy is retried at the backoff cap).",
            ["kind", "retry"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "prenv_operation_duration_seconds",
            "Duration of attempted stack operations.",
            ["kind"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, float("inf")),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "prenv_webhook_deliveries",
            "Webhook deliveries by event and result.",
            ["event", "result"],
            registry=self.registry,
        )
        self.resyncs = Counter(
            "prenv_resyncs",
            "Full reconcile passes by outcome (ok, source_unavailable, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.drift_checks = Counter(
            "prenv_drift_checks",
            "Drift checks by result (none, drifted, healed).",
            ["result"],
            registry=self.registry,
        )
        self.drifted = Gauge(
            "prenv_environment_drifted_resources",
            "Resources of an environment that differ from its last up, as its last drift check found them.",
            ["pr"],
            registry=self.registry,
        )
        self.requests_cpu = Gauge(
            "prenv_environment_requests_cpu_cores",
            "CPU (cores) the pods of an environment request, read from its namespace's ResourceQuota after its last "
            "up (absent: unknown).",
            ["pr"],
            registry=self.registry,
        )
        self.requests_memory = Gauge(
            "prenv_environment_requests_memory_bytes",
            "Memory (bytes) the pods of an environment request, read from its namespace's ResourceQuota after its "
            "last up (absent: unknown).",
            ["pr"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "prenv_queued_environments",
            "PRs waiting for an environment because filters.max_environments are running.",
            registry=self.registry,
        )
        self.evictions = Counter(
            "prenv_evictions",
            "Environments destroyed to make room for a waiting PR (filters.on_limit: evict-idle).",
            registry=self.registry,
        )
        self.registry.register(_Live(environments, busy, queue_depth, rate_limit))

    def reserved(self, pr: int, reservation: Reservation | None) -> None:
        """The requests of PR ``pr``'s environment as last read; None (unknown) removes its series."""
        if reservation is None:
            self._forget_reserved(pr)
            return
        self.requests_cpu.labels(str(pr)).set(reservation.cpu_cores)
        self.requests_memory.labels(str(pr)).set(reservation.memory_bytes)

    def _forget_reserved(self, pr: int) -> None:
        for gauge in (self.requests_cpu, self.requests_memory):
            with contextlib.suppress(KeyError):  # never read
                gauge.remove(str(pr))

    def drift(self, drift: Drift) -> None:
        self.drift_checks.labels("healed" if drift.healed else "drifted" if drift.drifted else "none").inc()
        self.drifted.labels(str(drift.pr)).set(0 if drift.healed else sum(drift.changes.values()))

    def observe(self, outcome: Outcome) -> None:
        kind = outcome.action.kind.value
        result = "skipped" if outcome.skipped is not None else ("ok" if outcome.ok else "failed")
        self.operations.labels(kind, result).inc()
        if result == "failed":
            self.failures.labels(kind, "temporary" if outcome.temporary else "permanent").inc()
        if outcome.skipped is None:
            self.durations.labels(kind).observe(outcome.seconds)
        if outcome.ok and outcome.action.kind.value == "destroy":
            with contextlib.suppress(KeyError):  # never checked
                self.drifted.remove(str(outcome.action.pr))
            self._forget_reserved(outcome.action.pr)

    def delivery(self, event: str, result: str) -> None:
        self.deliveries.labels(event, result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    def __init__(
        self,
        environments: Callable[[], Iterable[StackState]],
        busy: Callable[[], Iterable[int]],
        queue_depth: Callable[[], int],
        rate_limit: Callable[[], RateLimitView | None],
    ) -> None:
        self._environments = environments
        self._busy = busy
        self._depth = queue_depth
        self._rate_limit = rate_limit

    def collect(self) -> Iterator[Metric]:
        busy = set(self._busy())
        stacks = list(self._environments())
        counts = Tally(status_of(s, s.pr in busy).value for s in stacks)
        envs = GaugeMetricFamily("prenv_environments", "Preview environments by status.", labels=["status"])
        for status in EnvStatus:
            envs.add_metric([status.value], counts.get(status.value, 0))
        yield envs
        yield GaugeMetricFamily(
            "prenv_environments_asleep",
            "Preview environments asleep (workloads at zero replicas; prenv.sleep), among those counted above.",
            value=sum(1 for s in stacks if s.asleep),
        )
        yield GaugeMetricFamily("prenv_queue_depth", "PRs waiting for a reconcile.", value=self._depth())
        limit = self._rate_limit()
        if limit is not None:
            yield GaugeMetricFamily(
                "prenv_github_rate_limit_remaining", "GitHub API requests left.", value=limit.remaining
            )
            yield GaugeMetricFamily(
                "prenv_github_rate_limit_reset_timestamp_seconds",
                "When the GitHub rate limit resets (Unix time).",
                value=limit.reset.timestamp(),
            )
