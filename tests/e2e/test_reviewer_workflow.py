"""The reviewer workflow end to end (issue 17): ``/preview`` on a fork's PR and path filters, with the fake GitHub
server that PyGithub really talks to, the real pulumi engine and the embedded (KWOK) cluster and PostgreSQL.

* ``prenv serve``: a fork's PR gets nothing until a member comments ``/preview`` (a non-member's does nothing); it is
  then deployed at that commit only; a push leaves it at the approved commit and the PR comment asks for a new
  approval, which deploys the new commit.
* ``prenv sync`` (the driver's reconciler): under ``filters.paths_exclude`` a docs-only PR gets no environment, a PR
  that changes code gets one, and the docs-only PR gets one once a push changes code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prenv import driver, settings
from prenv.gateway.base import StackGateway
from prenv.service.runner import build_service, server
from tests.fixtures.preview import unique_pr
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import REPOSITORY, SECRET, encode, for_pr, headers, payload, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def write_config(
    tmp_path: Path,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """Writes a prenv.yaml for the GitHub source on the fake server and real stacks, with extra filters."""
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

    yield write


def deployed_sha(gateway: StackGateway, n: int) -> str | None:
    return next((s.sha for s in gateway.list_stacks() if s.pr == n), None)


def has_stack(gateway: StackGateway, n: int) -> bool:
    return any(s.pr == n for s in gateway.list_stacks())


def comment_event(fake: FakeGitHub, n: int, body: str, *, login: str, association: str) -> dict[str, Any]:
    """Post a comment on the fake PR and return the issue_comment webhook GitHub sends for it."""
    posted = fake.add_comment(REPOSITORY, n, body, login=login, association=association)
    event = payload("issue_comment")
    event["issue"]["number"] = n
    event["comment"].update(id=posted["id"], body=body, author_association=association)
    event["comment"]["user"]["login"] = login
    return event


def test_a_fork_approved_by_a_member_is_deployed_at_that_commit_only_and_a_push_waits_for_a_new_approval(
    write_config: Any, fake_github: FakeGitHub
) -> None:
    n = unique_pr()
    service = build_service(settings.load(write_config()))
    gateway = service.gateway
    repo = fake_github.add_repo(REPOSITORY)
    srv = server(service, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, what="uvicorn to start")
    base = f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"

    def answers() -> list[str]:
        return [c["body"] for c in repo.comments.get(n, []) if "prenv:command" in c["body"]]

    def status_comment() -> str:
        return next((c["body"] for c in repo.comments.get(n, []) if c["body"].startswith("<!-- prenv:preview")), "")

    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def deliver(event: dict[str, Any], kind: str) -> str:
                body = encode(event)
                response = http.post("/webhooks/github", content=body, headers=headers(body, kind))
                assert response.status_code == 202
                return str(response.json()["result"])

            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=60, what="readiness")
            fake_github.add_pull(REPOSITORY, n, sha="1" * 40, fork=True, author="stranger", labels=["preview"])
            assert deliver(for_pr("opened", n), "pull_request") == "queued"
            wait_for(lambda: service.queue.runs >= 1 and service.queue.depth() == 0, timeout=60, what="the reconcile")
            assert not has_stack(gateway, n), "a fork's PR is not deployed unapproved"

            outsider = comment_event(fake_github, n, "/preview", login="stranger", association="CONTRIBUTOR")
            assert deliver(outsider, "issue_comment") == "command-queued"
            member = comment_event(fake_github, n, "/preview", login="maint", association="MEMBER")
            assert deliver(member, "issue_comment") == "command-queued"
            wait_for(lambda: deployed_sha(gateway, n) == "1" * 40, timeout=240, what="the approved commit deployed")
            [answer] = answers()  # one answer: to the member, none to the outsider
            assert "` @maint `" in answer and "111111111111" in answer
            wait_for(lambda: "ready" in status_comment(), timeout=60, what="the ready comment")

            fake_github.add_pull(REPOSITORY, n, sha="2" * 40, fork=True, author="stranger", labels=["preview"])
            assert deliver(for_pr("synchronize", n), "pull_request") == "queued"
            wait_for(lambda: "waiting for a maintainer" in status_comment(), timeout=60, what="the approval request")
            assert "111111111111" in status_comment()
            assert deployed_sha(gateway, n) == "1" * 40, "the push is not deployed"

            again = comment_event(fake_github, n, "/preview", login="maint", association="MEMBER")
            assert deliver(again, "issue_comment") == "command-queued"
            wait_for(lambda: deployed_sha(gateway, n) == "2" * 40, timeout=240, what="the newly approved commit")
            assert len(answers()) == 2
            assert SECRET.decode() not in "".join(c["body"] for c in repo.comments[n])
    finally:
        srv.should_exit = True
        thread.join(60)
        if has_stack(gateway, n):
            gateway.inner.destroy(n)  # the drained service refuses new operations; its real gateway does not


def test_a_docs_only_pr_gets_no_environment_under_a_path_filter(write_config: Any, fake_github: FakeGitHub) -> None:
    docs, code = unique_pr(), unique_pr()
    fake_github.add_pull(REPOSITORY, docs, sha="1" * 40, labels=["preview"])
    fake_github.set_files(REPOSITORY, docs, ["docs/guide.md", "README.md"])
    fake_github.add_pull(REPOSITORY, code, sha="2" * 40, labels=["preview"])
    fake_github.set_files(REPOSITORY, code, ["app/main.py", "docs/guide.md"])
    d = driver.build(settings.load(write_config(paths_exclude=["docs/**", "*.md"])))
    mine = {docs, code}
    try:
        result = d.reconciler.sync()
        assert result.filtered is not None
        dropped = {x.pr.number: x.reason.value for x in result.filtered.dropped if x.pr.number in mine}
        assert dropped == {docs: "paths-excluded"}
        assert {s.pr for s in d.gateway.list_stacks()} & mine == {code}

        fake_github.add_pull(REPOSITORY, docs, sha="3" * 40, labels=["preview"])  # a push that touches code
        fake_github.set_files(REPOSITORY, docs, ["docs/guide.md", "app/feature.py"])
        d.reconciler.sync()
        assert deployed_sha(d.gateway, docs) == "3" * 40
    finally:
        for n in mine:
            if has_stack(d.gateway, n):
                d.gateway.destroy(n)
