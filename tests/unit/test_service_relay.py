"""Two replicas behind one Service: a follower relays authentic webhooks to the leader, and a new leader resyncs at
once.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory); the election is a
``Leadership`` record the test flips. The HTTP between the replicas is real (the leader under uvicorn on loopback).
Not end-to-end: tests/e2e/test_driver_in_cluster.py does this with two pods and a real Lease.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from prenv.gateway.fake import FakeGateway
from prenv.service.app import create_app
from prenv.service.leadership import RELAYED_HEADER, Leadership
from prenv.service.runner import server
from prenv.service.service import Service
from prenv.sources.fake import FakeSource
from testsupport.service_harness import TestClient, encode, for_pr, headers, idle, make_service, pull, wait_for


def election(leader: bool, url: str | None = None) -> tuple[Leadership, list[bool]]:
    """A Leadership whose answers the test sets; the list records releases."""
    state = {"leader": leader}
    released: list[bool] = []
    return (
        Leadership(is_leader=lambda: state["leader"], leader_url=lambda: url, release=lambda: released.append(True)),
        released,
    )


@pytest.fixture
def leader() -> Iterator[tuple[Service, FakeGateway, str]]:
    """A leading replica served by uvicorn on a free loopback port: its service, gateway and base URL."""
    gateway = FakeGateway()
    leadership, _ = election(True)
    service = make_service(FakeSource([pull(1), pull(7)]), gateway, leadership=leadership)
    srv = server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: srv.started, what="the leader to listen")
        port = srv.servers[0].sockets[0].getsockname()[1]
        wait_for(lambda: service.resyncs == 1 and idle(service), what="the leader's first resync")
        yield service, gateway, f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)
    assert not thread.is_alive()


def test_a_follower_relays_an_authentic_delivery_to_the_leader_which_acts_on_it(
    leader: tuple[Service, FakeGateway, str],
) -> None:
    _leading, leader_gateway, url = leader
    leader_gateway.destroy(7)
    follower_gateway = FakeGateway()
    leadership, _ = election(False, url)
    follower = make_service(FakeSource([pull(7)]), follower_gateway, leadership=leadership)
    with TestClient(create_app(follower)) as client:
        body = encode(for_pr("opened", 7))
        response = client.post("/webhooks/github", content=body, headers=headers(body))
        assert (response.status_code, response.json()) == (202, {"result": "queued", "pr": 7})
        wait_for(lambda: 7 in leader_gateway.stacks, what="the leader to bring PR 7 up")
    assert follower_gateway.calls == [], "the follower itself never acts"


def test_a_forged_delivery_is_refused_by_the_follower_and_never_reaches_the_leader(
    leader: tuple[Service, FakeGateway, str],
) -> None:
    leading, _gateway, url = leader
    leadership, _ = election(False, url)
    follower = make_service(leadership=leadership)
    with TestClient(create_app(follower)) as client:
        body = encode(for_pr("opened", 7))
        response = client.post("/webhooks/github", content=body, headers=headers(body, secret=b"not-the-secret"))
        assert response.status_code == 401
    assert leading.metrics.render().count(b'result="queued"') == 0


def test_a_relayed_delivery_reaching_a_follower_gets_503_and_is_not_relayed_again() -> None:
    asked: list[bool] = []
    leadership = Leadership(
        is_leader=lambda: False, leader_url=lambda: asked.append(True) or None, release=lambda: None
    )
    follower = make_service(leadership=leadership)
    with TestClient(create_app(follower)) as client:
        body = encode(for_pr("opened", 7))
        response = client.post("/webhooks/github", content=body, headers={**headers(body), RELAYED_HEADER: "1"})
    assert (response.status_code, response.json()["result"]) == (503, "not-leader")
    assert asked == [], "the leader was not even looked up"


def test_without_a_known_leader_a_follower_answers_503_with_retry_after() -> None:
    leadership, _ = election(False, None)
    follower = make_service(leadership=leadership)
    with TestClient(create_app(follower)) as client:
        body = encode(for_pr("opened", 7))
        response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert (response.status_code, response.json()["result"]) == (503, "no-leader")
    assert response.headers["retry-after"] == "30"


def test_an_unreachable_leader_makes_the_follower_answer_503() -> None:
    leadership, _ = election(False, "http://127.0.0.1:9")  # discard port: nothing listens
    follower = make_service(leadership=leadership)
    with TestClient(create_app(follower)) as client:
        body = encode(for_pr("opened", 7))
        response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert (response.status_code, response.json()["result"]) == (503, "leader-unreachable")


def test_a_replica_that_becomes_leader_resyncs_at_once_and_steps_down_after_its_drain() -> None:
    state = {"leader": False}
    released: list[bool] = []
    leadership = Leadership(
        is_leader=lambda: state["leader"], leader_url=lambda: None, release=lambda: released.append(True)
    )
    gateway = FakeGateway()
    service = make_service(FakeSource([pull(3)]), gateway, leadership=leadership)  # resync period: an hour
    with TestClient(create_app(service)) as client:
        assert client.get("/readyz").json()["role"] == "follower"
        assert 3 not in gateway.stacks, "a follower does not resync"
        state["leader"] = True
        for listen in leadership.listeners:
            listen(True)  # as the election's thread does
        wait_for(lambda: 3 in gateway.stacks, what="the new leader's resync")
        assert client.get("/readyz").json()["role"] == "leader"
        assert client.portal.call(service.drain, 5.0) is True  # type: ignore[union-attr]
        service.step_down()
    assert released == [True]
