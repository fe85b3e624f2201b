"""Leader election with a Kubernetes Lease (coordination.k8s.io/v1), so several ``prenv serve`` replicas can run and
exactly one acts.

The algorithm is client-go's: the holder renews ``spec.renewTime`` every ``retry_period``; a candidate takes the
Lease only when it is unheld or when the Lease has not changed for ``leaseDurationSeconds`` *as observed on the
candidate's own monotonic clock* (client-go's ``observedTime``), with an update carrying the read
``resourceVersion`` so that of two simultaneous takers exactly one wins (the other gets 409 Conflict).

Times written into the Lease are never compared with the local clock: two replicas whose wall clocks disagree by an
hour still see one renewal as one change, so skew can neither steal a live leader's Lease nor keep a dead one's.

Safety against two leaders acting at once: a leader that could not renew stops calling itself leader after
``renew_deadline`` (< lease duration) measured on its own monotonic clock, before anyone else may take the Lease.

Where the leader is: a holder given ``url`` writes it into the Lease's annotation ``prenv.dev/leader-url`` with
every renewal, so a follower that receives a webhook can relay it there (:meth:`LeaseElector.leader_url`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

URL_ANNOTATION = "prenv.dev/leader-url"


class LeaseElector:
    def __init__(
        self,
        api: Any,  # kubernetes.client.CoordinationV1Api
        *,
        namespace: str = "default",
        name: str = "prenv-driver",
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        url: str | None = None,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.api = api
        self.namespace, self.name = namespace, name
        self.identity = identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.on_change = on_change
        self.url = url
        self.clock = clock
        self.wall_clock = wall_clock  # only written into the Lease, for humans; never compared
        self._renewed_at: float | None = None
        self._observed: tuple[object, ...] | None = None  # the Lease record as last read
        self._observed_at = 0.0  # our monotonic time when that record last changed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_leader = False

    @property
    def is_leader(self) -> bool:
        """True only while our last successful renewal is younger than the renew deadline."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.renew_deadline

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_period * 3)
        if release and self.is_leader:
            self._release()
        self._renewed_at = None
        self._notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    self._renewed_at = self.clock()
            except Exception:
                logger.exception("leader election: renewal attempt failed")
            self._notify()
            self._stop.wait(self.retry_period)

    def _notify(self) -> None:
        now = self.is_leader
        if now != self._was_leader:
            self._was_leader = now
            logger.info("leader election: %s is %s", self.identity, "the leader" if now else "a follower")
            if self.on_change:
                self.on_change(now)

    def try_acquire_or_renew(self) -> bool:
        from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
        from kubernetes.client.exceptions import ApiException

        now = self.wall_clock()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            body = V1Lease(
                metadata=V1ObjectMeta(name=self.name, namespace=self.namespace, annotations=self._annotations({})),
                spec=V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(self.lease_duration),
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as e2:
                if e2.status == 409:
                    return False
                raise
        spec = lease.spec
        holder = spec.holder_identity
        record = (holder, spec.renew_time, spec.acquire_time, spec.lease_duration_seconds, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        if holder and holder != self.identity:
            duration = float(spec.lease_duration_seconds or self.lease_duration)
            if self.clock() < self._observed_at + duration:
                return False  # held by someone else, who renewed it less than a lease ago as far as we saw
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.lease_duration)
        spec.renew_time = now
        lease.metadata.annotations = self._annotations(lease.metadata.annotations or {})
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)  # carries resourceVersion
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def _annotations(self, current: dict[str, str]) -> dict[str, str]:
        """``current`` with our URL as the leader's (or without any, when we have none)."""
        annotations = {k: v for k, v in current.items() if k != URL_ANNOTATION}
        if self.url:
            annotations[URL_ANNOTATION] = self.url
        return annotations

    def leader_url(self) -> str | None:
        """The URL another replica holding the Lease advertised, or None: we hold it, nobody does, it advertised
        none, or the Lease cannot be read now."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except Exception:
            logger.warning("leader election: cannot read the lease to find the leader", exc_info=True)
            return None
        holder = lease.spec.holder_identity if lease.spec is not None else None
        if not holder or holder == self.identity:
            return None
        url = (lease.metadata.annotations or {}).get(URL_ANNOTATION)
        return str(url) if url else None

    def _release(self) -> None:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception:
            logger.warning("leader election: could not release the lease", exc_info=True)


def _main() -> None:
    """`python -m prenv.leader KUBECONFIG IDENTITY LOGFILE`: hold an election and log leadership (for tests)."""
    import sys

    from kubernetes import client, config

    kubeconfig, identity, logfile = sys.argv[1:4]
    api = client.CoordinationV1Api(config.new_client_from_config(config_file=kubeconfig))
    elector = LeaseElector(api, identity=identity, lease_duration=6, renew_deadline=4, retry_period=1)
    elector.start()
    with open(logfile, "a", buffering=1) as log:
        while True:
            log.write(f"{time.time():.3f} {identity} {'leader' if elector.is_leader else 'follower'}\n")
            time.sleep(0.2)


if __name__ == "__main__":
    _main()
