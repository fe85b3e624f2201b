"""``prenv serve``'s runner over real HTTP: uvicorn, a SIGTERM that drains before exiting, health and readiness.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import signal
import threading

import httpx

from prenv.gateway.fake import FakeGateway
from prenv.service.runner import server
from prenv.sources.fake import FakeSource
from testsupport.service_harness import encode, for_pr, headers, make_service, pull, wait_for


def test_sigterm_drains_the_running_update_then_exits_and_refuses_webhooks_meanwhile() -> None:
    started, release = threading.Event(), threading.Event()

    def hold(kind: str, pr: int) -> None:
        if pr == 9:
            started.set()
            release.wait(10)

    source = FakeSource([pull(1)])
    gateway = FakeGateway(on_call=hold)
    service = make_service(source, gateway)
    srv = server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, what="uvicorn to start")
    port = srv.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=5) as http:
        assert http.get("/healthz").json() == {"status": "alive"}
        wait_for(lambda: http.get("/readyz").status_code == 200, what="readiness after the first resync")
        assert http.get("/readyz").json()["role"] == "standalone"
        source.upsert(pull(9))
        body = encode(for_pr("opened", 9))
        assert http.post("/webhooks/github", content=body, headers=headers(body)).status_code == 202
        wait_for(started.is_set, what="the update of PR 9")

        srv.handle_exit(signal.SIGTERM, None)  # what the signal handler does
        wait_for(lambda: service.draining, what="the drain to begin")
        body = encode(for_pr("synchronize", 9))
        assert http.post("/webhooks/github", content=body, headers=headers(body)).status_code == 503
        assert http.get("/readyz").status_code == 503
        assert thread.is_alive(), "still serving while the update runs"
        assert "prenv_environments" in http.get("/metrics").text
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert gateway.stacks[9].sha == pull(9).sha
    assert gateway.overlaps == []
