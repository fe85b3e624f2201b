"""Capacity end to end (issue 17 item 3): ``filters.max_environments: 1`` under ``prenv serve``, with the fake GitHub
server that PyGithub really talks to, the real pulumi engine and the embedded (KWOK) cluster and PostgreSQL.

* ``on_limit: queue``: the second PR gets no environment and its PR comment says it waits, at position 1; the first
  PR's ``closed`` webhook destroys its environment and deploys the second in the same cycle.
* ``on_limit: evict-idle``: a new PR's ``opened`` webhook destroys the environment deployed longest ago to make room,
  and that PR's comment says why and how to come back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prenv import settings
from prenv.gateway.base import StackGateway
from prenv.service.runner import build_service, server
from prenv.service.service import Service
from tests.fixtures.preview import unique_pr
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import REPOSITORY, SECRET, encode, for_pr, headers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def write_config(
    tmp_path: Path,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Path]:
    """A prenv.yaml for the GitHub source on the fake server and real stacks, with the filters given."""
    for key in ("KUBECONFIG", "PRENV_DATABASE_ADMIN_DSN", "PULUMI_CONFIG_PASSPHRASE"):
        if key in preview_env:
            monkeypatch.setenv(key, preview_env[key])
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake_token_for_tests")
    monkeypatch.setenv("PRENV_WEBHOOK_SECRET", SECRET.decode())

    def write(**filters: Any) -> Path:
        config = tmp_path / "prenv.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "project_dir": str(project_dir),
                    "source": {
                        "type": "github",
                        "github": {"repository": REPOSITORY, "base_url": fake_github.base_url},
                    },
                    "filters": {"labels": ["preview"], **filters},
                    "state": {"backend": backend_url},
                    "serve": {"resync_seconds": 3600, "feedback": {"enabled": True}},
                }
            )
        )
        return config

    return write


def stacks(gateway: StackGateway) -> set[int]:
    return {s.pr for s in gateway.list_stacks()}


@contextmanager
def serving(service: Service) -> Iterator[Callable[[dict[str, Any], str], None]]:
    """``prenv serve`` on a free port until the block ends; yields a function that delivers a signed webhook."""
    srv = server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: srv.started, what="uvicorn to start")
        base = f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=240, what="the first resync")

            def deliver(event: dict[str, Any], kind: str) -> None:
                body = encode(event)
                response = http.post("/webhooks/github", content=body, headers=headers(body, kind))
                assert response.status_code == 202, response.text

            yield deliver
    finally:
        srv.should_exit = True
        thread.join(120)
        gateway = service.gateway.inner  # the drained service refuses new operations; its real gateway does not
        for n in stacks(gateway):
            gateway.destroy(n)


def status_comment(fake: FakeGitHub, n: int) -> str:
    repo = fake.add_repo(REPOSITORY)
    return next((c["body"] for c in repo.comments.get(n, []) if c["body"].startswith("<!-- prenv:preview")), "")


def test_at_the_cap_a_pr_waits_told_its_position_and_is_deployed_when_the_first_pr_closes(
    write_config: Callable[..., Path], fake_github: FakeGitHub
) -> None:
    first, second = sorted({unique_pr(), unique_pr()})
    fake_github.add_repo(REPOSITORY)
    fake_github.add_pull(REPOSITORY, first, sha="1" * 40, labels=["preview"])
    fake_github.add_pull(REPOSITORY, second, sha="2" * 40, labels=["preview"])
    service = build_service(settings.load(write_config(max_environments=1, on_limit="queue")))
    with serving(service) as deliver:
        assert stacks(service.gateway) == {first}, "the first PR asked first"
        wait_for(lambda: "position 1" in status_comment(fake_github, second), timeout=60, what="the queue comment")
        assert "waiting for a free environment" in status_comment(fake_github, second)
        assert service.metrics.registry.get_sample_value("prenv_queued_environments") == 1

        fake_github.close_pull(REPOSITORY, first)
        deliver(for_pr("closed", first), "pull_request")
        wait_for(lambda: stacks(service.gateway) == {second}, timeout=300, what="the second PR deployed")
        assert service.queue.runs == 1, "one reconcile: the closed PR's webhook deployed the queued one"
        wait_for(lambda: "ready" in status_comment(fake_github, second), timeout=60, what="the ready comment")
        assert "- **Reserves:** `" in status_comment(fake_github, second), "read from the cluster, not unknown"
        assert service.metrics.registry.get_sample_value("prenv_queued_environments") == 0


def test_evict_idle_destroys_the_environment_deployed_longest_ago_and_tells_its_pr(
    write_config: Callable[..., Path], fake_github: FakeGitHub
) -> None:
    old, new = sorted({unique_pr(), unique_pr()})
    fake_github.add_repo(REPOSITORY)
    fake_github.add_pull(REPOSITORY, old, sha="1" * 40, labels=["preview"])
    service = build_service(settings.load(write_config(max_environments=1, on_limit="evict-idle")))
    with serving(service) as deliver:
        assert stacks(service.gateway) == {old}

        fake_github.add_pull(REPOSITORY, new, sha="2" * 40, labels=["preview"])
        deliver(for_pr("opened", new), "pull_request")
        wait_for(lambda: stacks(service.gateway) == {new}, timeout=300, what="the eviction and the new deployment")
        wait_for(lambda: "torn down" in status_comment(fake_github, old), timeout=60, what="the eviction comment")
        told = status_comment(fake_github, old)
        assert f"evicted to make room for PR #{new}; push or comment /preview to come back" in told
        assert service.metrics.registry.get_sample_value("prenv_evictions_total") == 1

        service.reconciler.sync()  # a resync: the evicted PR does not evict back
        assert stacks(service.gateway) == {new}
