"""`prenv serve` end to end: fake GitHub webhooks → real stacks on the embedded cluster → one PR comment.

opened + labeled → the environment is ready and a comment is posted; synchronize → updated (same comment, edited);
closed → torn down and the comment says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from prenv.service.service import Service
from tests.fixtures.preview import shared_stack, unique_pr
from tests.fixtures.serve import build_served, serving
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import REPOSITORY, SECRET, encode, for_pr, headers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def real_service(
    tmp_path: Path,
    wildcard_project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Service]:
    """The service `prenv serve` builds from a prenv.yaml: GitHub source on the fake server, real stacks, TLS in
    wildcard mode (the shared stack holds the certificate the cluster's CA signed)."""
    source = {"type": "github", "github": {"repository": REPOSITORY, "base_url": fake_github.base_url}}
    token = ("GITHUB_TOKEN", "ghp_fake_token_for_tests")
    with shared_stack(wildcard_project_dir, backend_url, preview_env):
        yield build_served(tmp_path, wildcard_project_dir, backend_url, preview_env, source, monkeypatch, token=token)


def test_webhooks_bring_an_environment_up_update_it_and_tear_it_down_with_one_comment(
    real_service: Service, fake_github: FakeGitHub
) -> None:
    n = unique_pr()
    service = real_service
    repo = fake_github.add_repo(REPOSITORY)  # the existing one, or a new one
    gateway = service.reconciler.gateway

    def deliver(http: httpx.Client, action: str) -> None:
        body = encode(for_pr(action, n))
        assert http.post("/webhooks/github", content=body, headers=headers(body)).status_code == 202

    def deployed_sha() -> str | None:
        return next((s.sha for s in gateway.list_stacks() if s.pr == n), None)

    with serving(service) as base, httpx.Client(base_url=base, timeout=10) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, timeout=60, what="readiness")
        fake_github.add_pull(REPOSITORY, n, sha="1" * 40)
        deliver(http, "opened")  # not labelled yet: no environment
        fake_github.add_pull(REPOSITORY, n, sha="1" * 40, labels=["preview"])
        deliver(http, "labeled")
        wait_for(lambda: deployed_sha() == "1" * 40, timeout=240, what="the environment")
        wait_for(lambda: len(repo.comments.get(n, [])) == 1, timeout=30, what="the PR comment")
        wait_for(lambda: f"https://web-{n}.preview.test" in repo.comments[n][0]["body"], timeout=30, what="URL")

        fake_github.add_pull(REPOSITORY, n, sha="2" * 40, labels=["preview"])
        deliver(http, "synchronize")
        wait_for(lambda: deployed_sha() == "2" * 40, timeout=240, what="the update")
        wait_for(lambda: "2222222" in repo.comments[n][0]["body"], timeout=30, what="the edited comment")
        assert len(repo.comments[n]) == 1

        fake_github.close_pull(REPOSITORY, n)
        deliver(http, "closed")
        wait_for(lambda: deployed_sha() is None and not gateway_has(gateway, n), timeout=240, what="teardown")
        wait_for(lambda: "closed" in repo.comments[n][0]["body"].lower(), timeout=30, what="the final comment")
        assert len(repo.comments[n]) == 1
        # The fake lists statuses newest first, as GitHub does.
        history = {d["sha"]: [st["state"] for st in reversed(repo.statuses[d["id"]])] for d in repo.deployments}
        assert history == {
            "1" * 40: ["in_progress", "success", "inactive"],
            "2" * 40: ["in_progress", "success", "inactive"],
        }
        assert SECRET.decode() not in repo.comments[n][0]["body"]


def gateway_has(gateway: object, n: int) -> bool:
    return any(s.pr == n for s in gateway.list_stacks())  # type: ignore[attr-defined]


def test_an_environment_past_its_ttl_is_destroyed_and_told_and_a_new_push_brings_it_back(
    real_service: Service, fake_github: FakeGitHub
) -> None:
    n = unique_pr()
    service = real_service
    repo = fake_github.add_repo(REPOSITORY)
    gateway = service.reconciler.gateway
    assert service.ttl is not None
    fake_github.add_pull(REPOSITORY, n, sha="1" * 40, labels=["preview"])

    service.reconciler.sync(only=n)
    assert gateway_has(gateway, n)

    later = datetime.now(UTC) + timedelta(hours=49)  # default TTL 48 h
    service.ttl._clock = lambda: later
    service.reconciler.sync(only=n)
    assert not gateway_has(gateway, n)
    wait_for(lambda: "ttl" in repo.comments.get(n, [{}])[0].get("body", "").lower(), timeout=30, what="TTL comment")
    service.reconciler.sync(only=n)  # still expired: nothing comes back by itself
    assert not gateway_has(gateway, n)

    pushed_at = later.strftime("%Y-%m-%dT%H:%M:%SZ")  # a push, at the simulated time
    fake_github.add_pull(REPOSITORY, n, sha="2" * 40, labels=["preview"], updated_at=pushed_at)
    service.reconciler.sync(only=n)
    assert gateway_has(gateway, n)
    gateway.destroy(n)
