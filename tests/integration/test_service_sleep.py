"""Sleep and wake under prenv serve, told to the PR through the fake GitHub server: ``/preview sleep`` puts the
environment to sleep (the comment says how to wake it, the Deployment goes inactive), ``/preview wake`` and a push
wake it.

Stand-ins: FakeGateway (stacks in memory, no pulumi run), FakeSource (PRs in memory) and a command stub that answers
like GitHubCommands does after its checks (tests/integration/test_command_actions.py tests those against GitHub).
The real engine and cluster: tests/e2e/test_sleep_wake.py. Not end-to-end.
"""

from __future__ import annotations

from github import Auth

from prenv.gateway.fake import FakeGateway
from prenv.service.command_actions import Result
from prenv.service.commands import Command, Verb
from prenv.service.feedback import GitHubFeedback
from prenv.service.service import Service
from prenv.sleep import Request, SleepPolicy
from prenv.sources.fake import FakeSource
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import make_service, pull, wait_for

REPO = "octo/demo"


class SleepCommands:
    """Answers /preview sleep and /preview wake as GitHubCommands does once the comment checked out."""

    def __init__(self) -> None:
        self.handled: list[Verb] = []

    def handle(self, command: Command) -> Result:
        self.handled.append(command.verb)
        return Result(reconcile=True, sleep=Request.SLEEP if command.verb is Verb.SLEEP else Request.WAKE)


def command(verb: Verb, comment: int) -> Command:
    return Command(pr=2, verb=verb, login="lead", association="MEMBER", comment=comment, body=f"/preview {verb}")


def say(service: Service, verb: Verb, comment: int) -> None:
    """The comment arrives (as the webhook hands it over), then the reconcile the command asks for runs."""
    assert service.command(command(verb, comment))
    expected = Request.SLEEP if verb is Verb.SLEEP else Request.WAKE
    assert service.sleep is not None
    wait_for(lambda: service.sleep is not None and service.sleep.pending(2) is expected, what="the command")
    service.reconciler.sync(only=2)


def comment_of(fake: FakeGitHub) -> str:
    (body,) = [c["body"] for c in fake.repo(REPO).comments.get(2, [])]
    return str(body)


def last_state(fake: FakeGitHub) -> str:
    repo = fake.repo(REPO)
    latest = max((d for d in repo.deployments if d["environment"] == "pr-2"), key=lambda d: d["id"])
    return str(repo.statuses[latest["id"]][0]["state"])


def test_preview_sleep_puts_it_to_sleep_and_tells_the_pr_and_wake_or_a_push_wakes_it(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 2)
    source, gateway = FakeSource([pull(2, sha="a")]), FakeGateway()
    feedback = GitHubFeedback(REPO, Auth.Token("t0ken"), base_url=fake_github.base_url, seconds_between_requests=None)
    commands = SleepCommands()
    service = make_service(source, gateway, feedback=feedback, commands=commands, sleep=SleepPolicy())
    service.reconciler.sync()
    assert "ready" in comment_of(fake_github) and last_state(fake_github) == "success"

    say(service, Verb.SLEEP, 101)
    assert gateway.stacks[2].asleep
    assert "💤 asleep" in comment_of(fake_github)
    assert "comment `/preview wake` or push to wake it" in comment_of(fake_github)
    assert last_state(fake_github) == "inactive"
    ups = [c for c in gateway.calls if c == ("up", 2)]
    service.reconciler.sync()
    assert [c for c in gateway.calls if c == ("up", 2)] == ups, "an unchanged sleeping PR: no up"

    say(service, Verb.WAKE, 102)
    assert not gateway.stacks[2].asleep
    assert "✅ ready" in comment_of(fake_github)
    assert last_state(fake_github) == "success"

    say(service, Verb.SLEEP, 103)
    assert gateway.stacks[2].asleep
    source.upsert(pull(2, sha="b"))
    service.reconciler.sync()
    assert (gateway.stacks[2].sha, gateway.stacks[2].asleep) == ("b" * 40, False), "a push wakes it"
    assert commands.handled == [Verb.SLEEP, Verb.WAKE, Verb.SLEEP]
