"""Graceful shutdown: the operation in flight completes, no new one starts, new webhooks get 503.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import asyncio
import threading

from prenv.gateway.fake import FakeGateway
from prenv.service.app import create_app
from prenv.sources.fake import FakeSource
from testsupport.service_harness import TestClient, encode, for_pr, headers, idle, make_service, pull, wait_for


def test_an_operation_in_flight_completes_and_new_webhooks_get_503() -> None:
    started, release = threading.Event(), threading.Event()

    def hold(kind: str, pr: int) -> None:
        if pr == 3:
            started.set()
            release.wait(10)

    source = FakeSource([pull(1)])
    gateway = FakeGateway(on_call=hold)
    service = make_service(source, gateway)
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.resyncs == 1 and idle(service), what="start-up resync")
        source.upsert(pull(3))
        source.upsert(pull(4))
        body = encode(for_pr("opened", 3))
        client.post("/webhooks/github", content=body, headers=headers(body))
        wait_for(started.is_set, what="the update of PR 3 to start")
        service.begin_drain()
        body = encode(for_pr("opened", 4))
        response = client.post("/webhooks/github", content=body, headers=headers(body))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert client.get("/readyz").json()["draining"] is True
        release.set()
        drained = client.portal.call(service.drain, 5.0)  # type: ignore[union-attr]
    assert drained is True
    assert gateway.stacks[3].sha == pull(3).sha, "the update in flight finished"
    assert 4 not in gateway.stacks
    assert ("up", 4) not in gateway.calls
    assert gateway.overlaps == []


def test_a_draining_service_starts_no_new_operation_even_within_a_running_resync() -> None:
    started, release = threading.Event(), threading.Event()

    def hold(kind: str, pr: int) -> None:
        if pr == 1:
            started.set()
            release.wait(10)

    gateway = FakeGateway(on_call=hold)
    # parallelism 1: the resync runs PR 1, then would run PR 2 — which must not start once draining.
    service = make_service(FakeSource([pull(1), pull(2)]), gateway, parallelism=1)

    async def scenario() -> bool:
        await service.start()
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        service.begin_drain()
        release.set()
        return await service.drain(5.0)

    assert asyncio.run(scenario()) is True
    assert 1 in gateway.stacks
    assert ("up", 2) not in gateway.calls


def test_drain_reports_false_when_an_operation_outlives_the_grace() -> None:
    release = threading.Event()
    gateway = FakeGateway(on_call=lambda kind, pr: release.wait(10))
    service = make_service(FakeSource([pull(1)]), gateway)

    async def scenario() -> bool:
        await service.start()
        await asyncio.get_running_loop().run_in_executor(None, lambda: wait_for(lambda: bool(service.gateway.active())))
        result = await service.drain(0.2)
        release.set()
        return result

    assert asyncio.run(scenario()) is False
