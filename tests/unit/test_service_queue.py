"""Bursts of webhooks: every PR reconciled after its last event, none lost, never two runs for one PR at once.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import random
import threading

from prenv.gateway.fake import FakeGateway
from prenv.service.app import create_app
from prenv.sources.fake import FakeSource
from testsupport.service_harness import TestClient, encode, for_pr, headers, idle, make_service, pull, wait_for


def test_a_burst_of_200_deliveries_for_20_prs_reconciles_each_after_its_last_event() -> None:
    numbers = list(range(1, 21))
    source = FakeSource([pull(n, sha="0") for n in numbers])
    gateway = FakeGateway(delay=0.02)
    service = make_service(source, gateway, workers=4, parallelism=2)
    rng = random.Random(7)
    last_sha: dict[int, str] = {}
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.resyncs == 1 and idle(service), what="start-up resync")
        for i in range(200):
            n = rng.choice(numbers)
            sha = f"{i:040x}"
            source.upsert(pull(n, sha=sha))  # a push, then its webhook
            last_sha[n] = sha
            body = encode(for_pr(rng.choice(["synchronize", "labeled", "opened"]), n))
            assert client.post("/webhooks/github", content=body, headers=headers(body)).status_code == 202
        wait_for(lambda: idle(service), timeout=60, what="the queue to empty")
    assert {n: gateway.stacks[n].sha for n in last_sha} == last_sha
    assert gateway.overlaps == []
    ups = [pr for kind, pr in gateway.calls if kind == "up"]
    assert service.queue.runs < 200, "bursts for one PR are coalesced"
    assert set(ups) >= set(last_sha)


def test_events_while_the_stack_is_busy_lead_to_exactly_one_more_update_after_it() -> None:
    started, release = threading.Event(), threading.Event()
    source = FakeSource([pull(5, sha="a")])

    def hold(kind: str, pr: int) -> None:
        if source.list_open()[0].sha == "a" * 40:
            started.set()
            release.wait(5)

    gateway = FakeGateway(on_call=hold)
    service = make_service(source, gateway)
    with TestClient(create_app(service)) as client:
        wait_for(started.is_set, what="the first run to start")  # the start-up resync deploys sha a
        service.resyncs = 0
        # A push, then its webhooks, all while the first run holds the stack. (Pushing after the webhooks would
        # let a reconcile plan from the old sha and act on it once the stack is free: a third, stale run.)
        source.upsert(pull(5, sha="b"))
        for _ in range(5):
            body = encode(for_pr("synchronize", 5))
            client.post("/webhooks/github", content=body, headers=headers(body))
        release.set()
        wait_for(lambda: gateway.stacks.get(5) is not None and gateway.stacks[5].sha == "b" * 40, what="sha b")
        wait_for(lambda: idle(service))
    assert gateway.calls.count(("up", 5)) == 2
    assert gateway.overlaps == []
