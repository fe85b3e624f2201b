"""The leader advertises where it listens in its Lease, and a follower finds it there (for relaying webhooks).

The Lease API is the in-memory stand-in of test_leader_clock_skew (optimistic concurrency included).
"""

from __future__ import annotations

from prenv.leader import URL_ANNOTATION, LeaseElector
from tests.unit.test_leader_clock_skew import Clock, LeaseStore


def replica(store: LeaseStore, identity: str, clock: Clock, url: str | None) -> LeaseElector:
    return LeaseElector(
        store, identity=identity, lease_duration=15.0, renew_deadline=10.0, retry_period=2.0, clock=clock, url=url
    )


def test_a_follower_finds_the_url_the_leader_wrote_into_its_lease() -> None:
    store, clock = LeaseStore(), Clock()
    a = replica(store, "a", clock, "http://10.0.0.5:8080")
    b = replica(store, "b", clock, "http://10.0.0.6:8080")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert b.leader_url() == "http://10.0.0.5:8080"
    assert a.leader_url() is None, "the leader does not relay to itself"


def test_the_next_leader_replaces_the_url_and_a_leader_without_one_leaves_none_behind() -> None:
    store, clock = LeaseStore(), Clock()
    a = replica(store, "a", clock, "http://10.0.0.5:8080")
    b = replica(store, "b", clock, "http://10.0.0.6:8080")
    c = replica(store, "c", clock, None)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b observes a's Lease now
    clock.now += 16  # a stopped renewing a lease duration ago, as b saw it
    assert b.try_acquire_or_renew()
    assert a.leader_url() == "http://10.0.0.6:8080"
    assert not c.try_acquire_or_renew()
    clock.now += 16
    assert c.try_acquire_or_renew()
    assert store.lease is not None and URL_ANNOTATION not in (store.lease.metadata.annotations or {})
    assert a.leader_url() is None


def test_no_leader_means_no_url() -> None:
    store, clock = LeaseStore(), Clock()
    assert replica(store, "b", clock, "http://10.0.0.6:8080").leader_url() is None
