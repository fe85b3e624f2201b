"""prenv serve against the fake GitLab: MR feedback (one note edited in place, an environment with the preview URL,
stopped on teardown), and the whole path from a GitLab webhook through the real GitLab source to the stacks; an
outage of GitLab destroys nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prenv.errors import StackOperationError
from prenv.gateway.fake import FakeGateway
from prenv.model import PullRequest
from prenv.service.app import create_app
from prenv.service.feedback import MARKER, Phase, Report
from prenv.service.gitlab_feedback import GitLabFeedback, environment_name
from prenv.sources.fake import FakeSource
from prenv.sources.gitlab import GitLabSource
from tests.fixtures.gitlab import TOKEN
from testsupport.gitlab_server import FakeGitLab
from testsupport.service_harness import SECRET, TestClient, encode, make_service, pull, wait_for

PROJECT = "gitlabhq/gitlab-test"
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "gitlab-webhooks"


def feedback(fake: FakeGitLab, **kw: Any) -> GitLabFeedback:
    return GitLabFeedback(PROJECT, TOKEN, base_url=fake.url, **kw)


def notes(fake: FakeGitLab, iid: int) -> list[str]:
    return [n["body"] for n in fake.notes(PROJECT, iid)]


def environment(fake: FakeGitLab, iid: int) -> dict[str, Any]:
    [env] = [e for e in fake.environments(PROJECT) if e["name"] == environment_name(iid)]
    return env


def hook(name: str, iid: int) -> bytes:
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    data["object_attributes"]["iid"] = iid
    return encode(data)


def hook_headers(token: str = SECRET.decode()) -> dict[str, str]:
    return {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }


def test_an_mr_gets_one_note_edited_in_place_and_an_environment_that_is_stopped_on_teardown(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.add_merge_request(PROJECT, 2)
    source = FakeSource([pull(2, sha="a")])
    service = make_service(source, FakeGateway(), feedback=feedback(fake_gitlab), gitlab_project=PROJECT)

    service.reconciler.sync()
    [body] = notes(fake_gitlab, 2)
    assert body.startswith(MARKER) and "ready" in body and "<http://web-2.preview.test>" in body
    env = environment(fake_gitlab, 2)
    assert (env["name"], env["external_url"], env["state"]) == (
        "preview/pr-2",
        "http://web-2.preview.test",
        "available",
    )

    source.upsert(pull(2, sha="b"))
    service.reconciler.sync()
    [body] = notes(fake_gitlab, 2)
    assert "bbbbbbbbbbbb" in body

    source.close(2)
    service.enqueue(2, "merged")
    service.reconciler.sync()
    [body] = notes(fake_gitlab, 2)
    assert "torn down" in body and "the merge request was merged" in body
    assert environment(fake_gitlab, 2)["state"] == "stopped"
    assert fake_gitlab.calls("POST", rf"/projects/{PROJECT}/merge_requests/2/notes") == 1
    assert len(fake_gitlab.environments(PROJECT)) == 1


def test_a_failure_shows_the_error_summary_in_the_note(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 3)
    gateway = FakeGateway(fail={("up", 3): StackOperationError("pr-3", "pulumi up failed: quota exceeded")})
    service = make_service(FakeSource([pull(3)]), gateway, feedback=feedback(fake_gitlab), gitlab_project=PROJECT)

    service.reconciler.sync()

    [body] = notes(fake_gitlab, 3)
    assert "deployment failed" in body and "pr-3: pulumi up failed: quota exceeded" in body
    assert environment(fake_gitlab, 3)["external_url"] is None


def test_hostile_mr_title_and_branch_are_shown_literally(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 4)
    hostile = PullRequest(
        number=4,
        sha="c" * 40,
        branch="x`](https://evil.example)<img src=x onerror=alert(1)>",
        base="main",
        author="mallory",
        title="@all ``` **pwned** <script>alert(1)</script> !1 /merge [link](javascript:alert(1))",
    )
    service = make_service(FakeSource([hostile]), FakeGateway(), feedback=feedback(fake_gitlab))

    service.reconciler.sync()

    [body] = notes(fake_gitlab, 4)
    title = next(line for line in body.splitlines() if line.startswith("- **Title:**"))
    branch = next(line for line in body.splitlines() if line.startswith("- **Branch:**"))
    assert (
        title
        == "- **Title:** ```` @all ``` **pwned** <script>alert(1)</script> !1 /merge [link](javascript:alert(1)) ````"
    )
    assert branch == "- **Branch:** `` x`](https://evil.example)<img src=x onerror=alert(1)> ``"
    assert environment(fake_gitlab, 4)["name"] == "preview/pr-4"


def test_a_restarted_service_finds_its_note_again_by_the_marker(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 5)
    now = datetime.now(UTC)
    feedback(fake_gitlab).report(Report(5, Phase.READY, now, pull=pull(5), url="http://web-5.preview.test"))
    fake_gitlab.project(PROJECT).notes[5].insert(
        0, {**fake_gitlab.project(PROJECT).notes[5][0], "id": 1, "body": "LGTM", "author": {"username": "human"}}
    )

    feedback(fake_gitlab).report(Report(5, Phase.TORN_DOWN, now, reason="its TTL expired"))

    bodies = notes(fake_gitlab, 5)
    assert bodies[0] == "LGTM"
    assert len(bodies) == 2 and "its TTL expired" in bodies[1]


def test_a_gitlab_outage_never_breaks_the_operation(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 6)
    fake_gitlab.fail(r".*", 500)
    gateway = FakeGateway()
    service = make_service(FakeSource([pull(6)]), gateway, feedback=feedback(fake_gitlab))

    service.reconciler.sync()

    assert gateway.stacks[6].result == "succeeded"


def test_serve_end_to_end_with_the_gitlab_source_webhooks_and_feedback(fake_gitlab: FakeGitLab) -> None:
    """Open, push, close through webhooks; the state is read from GitLab itself; a GitLab outage destroys nothing."""
    fake_gitlab.add_merge_request(PROJECT, 1, labels=["preview"])
    source = GitLabSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url, retries=0)
    gateway = FakeGateway()
    fb = feedback(fake_gitlab)
    service = make_service(source, gateway, feedback=fb, gitlab_project=PROJECT)  # type: ignore[arg-type]
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.ready and 1 in gateway.stacks, what="the start-up resync deploys !1")

        fake_gitlab.add_merge_request(PROJECT, 2, title="Checkout")
        opened = client.post("/webhooks/gitlab", content=hook("merge_request_open", 2), headers=hook_headers())
        assert opened.json() == {"result": "queued", "pr": 2}
        wait_for(lambda: 2 in gateway.stacks and gateway.stacks[2].result == "succeeded", what="!2 deployed")
        wait_for(lambda: "ready" in "".join(notes(fake_gitlab, 2)), what="!2 told it is ready")
        assert environment(fake_gitlab, 2)["external_url"] == "http://web-2.preview.test"

        fake_gitlab.add_merge_request(PROJECT, 2, title="Checkout", sha="e" * 40)
        client.post("/webhooks/gitlab", content=hook("merge_request_update_commits", 2), headers=hook_headers())
        wait_for(lambda: gateway.stacks[2].sha == "e" * 40, what="!2 updated to the new commit")

        # GitLab goes down: a full resync and a webhook-triggered reconcile both destroy nothing.
        fake_gitlab.stop()
        before = service.resyncs
        service._resync_once()
        client.post("/webhooks/gitlab", content=hook("merge_request_close", 2), headers=hook_headers())
        wait_for(lambda: service.queue.depth() == 0 and not service.queue.running(), what="the queue drained")
        assert set(gateway.stacks) == {1, 2}
        assert service.resyncs == before + 1
        fake_gitlab.start()

        fake_gitlab.close_merge_request(PROJECT, 2)
        rejected = client.post("/webhooks/gitlab", content=hook("merge_request_close", 2), headers=hook_headers("x"))
        assert rejected.status_code == 401
        closed = client.post("/webhooks/gitlab", content=hook("merge_request_close", 2), headers=hook_headers())
        assert closed.json() == {"result": "queued", "pr": 2}
        wait_for(lambda: 2 not in gateway.stacks, what="!2 destroyed")
        wait_for(lambda: environment(fake_gitlab, 2)["state"] == "stopped", what="!2's environment stopped")
        wait_for(lambda: "torn down" in notes(fake_gitlab, 2)[0], what="!2 told it is torn down")
        assert len(notes(fake_gitlab, 2)) == 1
    fb.close()
    source.close()
    assert set(gateway.stacks) == {1}
