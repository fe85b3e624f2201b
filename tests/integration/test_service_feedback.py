"""PR feedback against the fake GitHub server: one comment edited in place, Deployments following the environment.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

from datetime import UTC, datetime

from github import Auth

from prenv.errors import StackOperationError
from prenv.gateway.fake import FakeGateway
from prenv.service.feedback import MARKER, GitHubFeedback, Phase, Report
from prenv.sources.fake import FakeSource
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import make_service, pull

REPO = "octo/demo"


def feedback(fake: FakeGitHub, **kw: object) -> GitHubFeedback:
    return GitHubFeedback(REPO, Auth.Token("t0ken"), base_url=fake.base_url, seconds_between_requests=None, **kw)  # type: ignore[arg-type]


def comments(fake: FakeGitHub, n: int) -> list[str]:
    return [c["body"] for c in fake.repo(REPO).comments.get(n, [])]


def states(fake: FakeGitHub, env: str) -> list[str]:
    repo = fake.repo(REPO)
    out: list[str] = []
    for d in repo.deployments:
        if d["environment"] == env:
            out += [s["state"] for s in reversed(repo.statuses[d["id"]])]
    return out


def run_cycle(service, *, only: int | None = None) -> None:  # type: ignore[no-untyped-def]
    service.reconciler.sync(only=only)


def test_a_pr_gets_one_comment_edited_in_place_and_deployments_follow_the_environment(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 2)
    source = FakeSource([pull(2, sha="a")])
    gateway = FakeGateway()
    service = make_service(source, gateway, feedback=feedback(fake_github))
    run_cycle(service)
    assert len(comments(fake_github, 2)) == 1
    assert "ready" in comments(fake_github, 2)[0]
    assert "http://web-2.preview.test" in comments(fake_github, 2)[0]
    assert states(fake_github, "pr-2") == ["in_progress", "success"]

    source.upsert(pull(2, sha="b"))
    run_cycle(service)
    body = comments(fake_github, 2)
    assert len(body) == 1 and body[0].startswith(MARKER)
    assert "bbbbbbbbbbbb" in body[0]
    # the first deployment went inactive when the second succeeded (auto_inactive)
    assert states(fake_github, "pr-2") == ["in_progress", "success", "inactive", "in_progress", "success"]

    source.close(2)
    service.enqueue(2, "closed")
    run_cycle(service)
    body = comments(fake_github, 2)
    assert len(body) == 1
    assert "torn down" in body[0] and "the PR was closed" in body[0]
    assert states(fake_github, "pr-2")[-1] == "inactive"
    assert fake_github.calls("POST", rf"/repos/{REPO}/issues/2/comments") == 1


def test_a_failure_shows_the_error_summary(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 3)
    gateway = FakeGateway(fail={("up", 3): StackOperationError("pr-3", "pulumi up failed: quota exceeded")})
    service = make_service(FakeSource([pull(3)]), gateway, feedback=feedback(fake_github))
    run_cycle(service)
    (body,) = comments(fake_github, 3)
    assert "deployment failed" in body
    assert "pr-3: pulumi up failed: quota exceeded" in body
    assert states(fake_github, "pr-3") == ["in_progress", "failure"]
    status = fake_github.repo(REPO).statuses[fake_github.repo(REPO).deployments[0]["id"]][0]
    assert "quota exceeded" in status["description"]


def test_hostile_title_and_branch_are_shown_literally(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 4)
    hostile = pull(4).__class__(
        number=4,
        sha="c" * 40,
        branch="x`](https://evil.example)<img src=x onerror=alert(1)>",
        base="main",
        author="mallory",
        title="@everyone ``` **pwned** <script>alert(1)</script> #1 [link](javascript:alert(1))",
    )
    service = make_service(FakeSource([hostile]), FakeGateway(), feedback=feedback(fake_github))
    run_cycle(service)
    (body,) = comments(fake_github, 4)
    title_line = next(line for line in body.splitlines() if line.startswith("- **Title:**"))
    branch_line = next(line for line in body.splitlines() if line.startswith("- **Branch:**"))
    assert (
        title_line
        == "- **Title:** ```` @everyone ``` **pwned** <script>alert(1)</script> #1 [link](javascript:alert(1)) ````"
    )
    assert branch_line == "- **Branch:** `` x`](https://evil.example)<img src=x onerror=alert(1)> ``"


def test_a_restarted_service_finds_its_comment_again_by_the_marker(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 5)
    first = feedback(fake_github)
    now = datetime.now(UTC)
    first.report(Report(5, Phase.READY, now, pull=pull(5), url="http://web-5.preview.test"))
    fake_github.repo(REPO).comments[5].insert(
        0, {**fake_github.repo(REPO).comments[5][0], "id": 1, "body": "LGTM", "user": {"login": "human"}}
    )
    second = feedback(fake_github)  # no memory of the comment id
    second.report(Report(5, Phase.TORN_DOWN, now, reason="its TTL expired"))
    bodies = comments(fake_github, 5)
    assert bodies[0] == "LGTM"
    assert len(bodies) == 2 and "its TTL expired" in bodies[1]


def test_a_github_outage_never_breaks_the_operation(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 6)
    fake_github.fail(r".*", 500)
    gateway = FakeGateway()
    service = make_service(FakeSource([pull(6)]), gateway, feedback=feedback(fake_github, retries=0))
    run_cycle(service)
    assert gateway.stacks[6].result == "succeeded"


def test_the_health_check_holds_success_until_the_url_answers(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7)
    checked: list[str] = []
    fb = feedback(fake_github, health_check=lambda url: checked.append(url) or False)
    service = make_service(FakeSource([pull(7)]), FakeGateway(), feedback=fb)
    run_cycle(service)
    assert checked == ["http://web-7.preview.test"]
    assert states(fake_github, "pr-7") == ["in_progress", "failure"]
    assert "did not answer HTTP 200" in comments(fake_github, 7)[0]


def test_an_expired_environment_is_torn_down_and_the_pr_is_told_why(fake_github: FakeGitHub) -> None:
    from datetime import timedelta

    from prenv.model import StackState
    from prenv.service.ttl import TtlPolicy

    fake_github.add_pull(REPO, 8)
    old = datetime.now(UTC) - timedelta(days=3)
    gateway = FakeGateway(
        stacks={
            8: StackState(
                8, "pr-8", pull(8).sha, "cfg", url="http://web-8.preview.test", created_at=old, result="succeeded"
            )
        }
    )
    source = FakeSource([pull(8, updated_at=old)])
    service = make_service(source, gateway, feedback=feedback(fake_github), ttl=TtlPolicy())
    run_cycle(service)
    assert 8 not in gateway.stacks
    (body,) = comments(fake_github, 8)
    assert "TTL expired" in body
    run_cycle(service)
    assert 8 not in gateway.stacks, "an expired PR is not recreated"
