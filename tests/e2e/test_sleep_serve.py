"""Sleep and wake under ``prenv serve`` end to end (issue 17 item 5): the fake GitHub server that PyGithub really talks
to, signed webhooks over HTTP, the real pulumi engine and the embedded (KWOK) cluster and PostgreSQL.

A member's ``/preview sleep`` scales the PR's Deployment to zero (its Service stays), the PR comment says how to wake
it and the GitHub Deployment goes ``inactive``; a push wakes it, and the comment says ready again.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from kubernetes import client

from prenv import settings
from prenv.service.runner import build_service, server
from tests.e2e.test_reviewer_workflow import comment_event, write_config  # noqa: F401  (a fixture)
from tests.fixtures.preview import unique_pr
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import REPOSITORY, encode, for_pr, headers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_preview_sleep_scales_the_pr_to_zero_and_tells_the_pr_and_a_push_wakes_it(
    write_config: Any,  # noqa: F811
    fake_github: FakeGitHub,
    cluster_api: client.ApiClient,
) -> None:
    n = unique_pr()
    apps, core = client.AppsV1Api(cluster_api), client.CoreV1Api(cluster_api)
    service = build_service(settings.load(write_config()))
    gateway = service.gateway
    repo = fake_github.add_repo(REPOSITORY)
    srv = server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, what="uvicorn to start")
    base = f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"

    def status_comment() -> str:
        return next((c["body"] for c in repo.comments.get(n, []) if c["body"].startswith("<!-- prenv:preview")), "")

    def last_deployment_state() -> str | None:
        mine = [d for d in repo.deployments if d["environment"] == f"pr-{n}"]
        if not mine:
            return None
        statuses = repo.statuses.get(max(mine, key=lambda d: d["id"])["id"]) or [{}]
        return statuses[0].get("state")

    def stack(attribute: str) -> Any:
        return next((getattr(s, attribute) for s in gateway.list_stacks() if s.pr == n), None)

    def replicas() -> int:
        return int(apps.read_namespaced_deployment("web", f"pr-{n}").spec.replicas)

    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def deliver(event: dict[str, Any], kind: str) -> str:
                body = encode(event)
                response = http.post("/webhooks/github", content=body, headers=headers(body, kind))
                assert response.status_code == 202
                return str(response.json()["result"])

            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=60, what="readiness")
            fake_github.add_pull(REPOSITORY, n, sha="1" * 40, labels=["preview"])
            assert deliver(for_pr("opened", n), "pull_request") == "queued"
            wait_for(lambda: "✅ ready" in status_comment(), timeout=240, what="the environment ready")
            assert replicas() == 1

            asked = comment_event(fake_github, n, "/preview sleep", login="maint", association="MEMBER")
            assert deliver(asked, "issue_comment") == "command-queued"
            wait_for(lambda: stack("asleep") is True, timeout=240, what="the environment asleep")
            assert replicas() == 0
            assert core.read_namespaced_service("web", f"pr-{n}").spec.ports[0].port == 80, "the Service stays"
            wait_for(lambda: "💤 asleep" in status_comment(), timeout=60, what="the comment to say it sleeps")
            assert "comment `/preview wake` or push to wake it" in status_comment()
            wait_for(lambda: last_deployment_state() == "inactive", timeout=60, what="the Deployment inactive")

            fake_github.add_pull(REPOSITORY, n, sha="2" * 40, labels=["preview"])
            assert deliver(for_pr("synchronize", n), "pull_request") == "queued"
            wait_for(lambda: stack("sha") == "2" * 40, timeout=240, what="the push deployed")
            assert stack("asleep") is False and replicas() == 1, "a push wakes it"
            wait_for(lambda: "✅ ready" in status_comment(), timeout=60, what="the comment to say ready")
            wait_for(lambda: last_deployment_state() == "success", timeout=60, what="the Deployment successful")
    finally:
        srv.should_exit = True
        thread.join(60)
        if stack("sha") is not None:
            gateway.inner.destroy(n)  # the drained service refuses new operations; its real gateway does not
