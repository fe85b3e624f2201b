"""Leader election judges a Lease by what this replica observed on its own monotonic clock, never by comparing the
holder's ``renewTime`` with the local wall clock (client-go's ``observedTime``), so clock skew between replicas can
neither steal a live leader's Lease nor keep a dead leader's Lease forever.

The Lease API is an in-memory stand-in with the one property election relies on: an update carrying a stale
``resourceVersion`` gets 409 Conflict. Takeover against a real apiserver is tested in tests/integration/test_leader.py.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import V1Lease
from kubernetes.client.exceptions import ApiException

from prenv.leader import LeaseElector

LEASE = 15.0
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class LeaseStore:
    """coordination.k8s.io/v1 Lease read/create/replace with optimistic concurrency."""

    def __init__(self) -> None:
        self.lease: V1Lease | None = None
        self.version = 0

    def read_namespaced_lease(self, name: str, namespace: str) -> V1Lease:
        if self.lease is None:
            raise ApiException(status=404)
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace: str, body: V1Lease) -> V1Lease:
        if self.lease is not None:
            raise ApiException(status=409)
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.lease = copy.deepcopy(body)
        return body

    def replace_namespaced_lease(self, name: str, namespace: str, body: V1Lease) -> V1Lease:
        assert self.lease is not None
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409)
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.lease = copy.deepcopy(body)
        return body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(store: LeaseStore, identity: str, clock: Clock, wall_offset: timedelta) -> LeaseElector:
    return LeaseElector(
        store,
        identity=identity,
        lease_duration=LEASE,
        renew_deadline=10.0,
        retry_period=2.0,
        clock=clock,
        wall_clock=lambda: NOW + wall_offset + timedelta(seconds=clock.now),
    )


@pytest.mark.parametrize(
    "leader_skew",
    [timedelta(hours=-1), timedelta(hours=1)],
    ids=["leader-clock-an-hour-behind", "leader-clock-an-hour-ahead"],
)
def test_a_follower_never_takes_a_lease_its_skewed_leader_keeps_renewing(leader_skew: timedelta) -> None:
    store, clock = LeaseStore(), Clock()
    leader = elector(store, "a", clock, leader_skew)
    follower = elector(store, "b", clock, timedelta(0))
    assert leader.try_acquire_or_renew()

    taken = []
    for _ in range(60):  # two minutes of renewals every 2 s, far past several lease durations
        clock.now += 2.0
        assert leader.try_acquire_or_renew()
        taken.append(follower.try_acquire_or_renew())

    assert not any(taken)
    assert store.lease is not None and store.lease.spec.holder_identity == "a"


@pytest.mark.parametrize(
    "leader_skew",
    [timedelta(hours=-1), timedelta(hours=1)],
    ids=["leader-clock-an-hour-behind", "leader-clock-an-hour-ahead"],
)
def test_a_follower_takes_over_one_lease_duration_after_the_skewed_leader_stopped_renewing(
    leader_skew: timedelta,
) -> None:
    store, clock = LeaseStore(), Clock()
    leader = elector(store, "a", clock, leader_skew)
    follower = elector(store, "b", clock, timedelta(0))
    assert leader.try_acquire_or_renew()
    assert not follower.try_acquire_or_renew()  # the follower observes the Lease now

    clock.now += LEASE - 1  # the leader died right after its last renewal
    assert not follower.try_acquire_or_renew()
    clock.now += 2
    assert follower.try_acquire_or_renew()

    assert store.lease is not None
    assert store.lease.spec.holder_identity == "b"
    assert store.lease.spec.lease_transitions == 1
