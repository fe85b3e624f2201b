"""``/preview`` commands carried out through real PyGithub against the fake GitHub server, and the fork approvals they
leave on the PR read back by a fresh ApprovalSource (as after a restart).

Who may command, what each verb changes on the PR (labels, answers, signed approval markers), and every bad input of
issue 17: unknown commands, closed PRs, edited and deleted comments, replays, non-members, forged markers.
"""

from __future__ import annotations

from typing import Any

import pytest

from prenv.filters import FilterSettings, compile_filters
from prenv.model import PullRequest
from prenv.service.command_actions import CommandRules, GitHubCommands, Result
from prenv.service.commands import Command, parse
from prenv.sleep import Request
from prenv.sources.approvals import Approval, ApprovalSource, marker
from prenv.sources.github import GitHubSource
from testsupport.github_server import FakeGitHub

REPO = "octo/shop"
SECRET = b"webhook-secret-for-markers"
HEAD = "1" * 40
RULES = CommandRules(
    allowed_associations=frozenset({"OWNER", "MEMBER", "COLLABORATOR"}),
    off_label="preview/off",
    required_labels=("preview",),
    keep_label="preview/keep",
    allow_forks=False,
)


def github_source(fake: FakeGitHub) -> GitHubSource:
    return GitHubSource(REPO, token="ghp_test", base_url=fake.base_url, retries=0, seconds_between_requests=None)


def approvals(fake: FakeGitHub, told: list[tuple[int, str]] | None = None) -> ApprovalSource:
    def tell(pr: PullRequest, approved: str) -> None:
        if told is not None:
            told.append((pr.number, approved))

    return ApprovalSource(github_source(fake), REPO, SECRET, on_awaiting=tell)


def commands(fake: FakeGitHub, source: ApprovalSource | None = None) -> GitHubCommands:
    return GitHubCommands(
        REPO, None, secret=SECRET, rules=RULES, approvals=source, base_url=fake.base_url, seconds_between_requests=None
    )


def say(fake: FakeGitHub, pr: int, body: str, *, association: str = "MEMBER", login: str = "maint") -> Command:
    """Post a comment on the fake and return the command its webhook would carry."""
    posted = fake.add_comment(REPO, pr, body, login=login, association=association)
    verb = parse(body)
    assert verb is not None
    return Command(pr, verb, posted["id"], body, login, association)


def labels(fake: FakeGitHub, pr: int) -> set[str]:
    return {label["name"] for label in fake.repo(REPO).pulls[pr]["labels"]}


def answers(fake: FakeGitHub, pr: int) -> list[str]:
    return [c["body"] for c in fake.repo(REPO).comments.get(pr, []) if c["user"]["login"] == "prenv[bot]"]


def open_prs(source: ApprovalSource) -> dict[int, PullRequest]:
    return {pr.number: pr for pr in source.list_open()}


def test_a_member_approves_a_forks_head_commit_and_a_restarted_driver_still_sees_it(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True, author="stranger")
    source = approvals(fake_github)
    assert open_prs(source)[7].approved is False

    result = commands(fake_github, source).handle(say(fake_github, 7, "/preview"))

    assert result == Result(reconcile=True)
    assert labels(fake_github, 7) == {"preview"}
    [answer] = answers(fake_github, 7)
    assert "approved commit ` 111111111111 `" in answer and "`/preview` again" in answer
    assert open_prs(source)[7].approved is True
    restarted = approvals(fake_github)  # nothing in memory: read from the PR
    assert open_prs(restarted)[7].approved is True and open_prs(restarted)[7].sha == HEAD


def test_a_push_after_the_approval_holds_the_pr_at_the_approved_commit_until_a_new_approval(
    fake_github: FakeGitHub,
) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True, labels=["preview"])
    told: list[tuple[int, str]] = []
    source = approvals(fake_github, told)
    actions = commands(fake_github, source)
    actions.handle(say(fake_github, 7, "/preview"))

    fake_github.add_pull(REPO, 7, sha="2" * 40, fork=True, labels=["preview"])  # the fork pushes
    held = open_prs(source)[7]
    assert (held.sha, held.approved) == (HEAD, True)
    assert told == [(7, HEAD)]
    open_prs(source)
    assert told == [(7, HEAD)], "the PR is told once per new commit"
    assert open_prs(approvals(fake_github))[7].sha == HEAD, "after a restart too"

    actions.handle(say(fake_github, 7, "/preview"))
    assert open_prs(source)[7].sha == "2" * 40


def test_a_command_from_someone_who_is_no_member_does_nothing_and_gets_no_answer(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True)
    source = approvals(fake_github)
    requests_before = len(fake_github.requests)

    for association in ("CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE"):
        result = commands(fake_github, source).handle(say(fake_github, 7, "/preview", association=association))
        assert result == Result()

    assert answers(fake_github, 7) == [] and labels(fake_github, 7) == set()
    assert len(fake_github.requests) == requests_before, "not even a read"
    assert open_prs(source)[7].approved is False


def test_a_marker_written_by_someone_else_does_not_approve(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True)
    forged = marker(b"guessed-secret", REPO, Approval(7, HEAD, "approved", 1))
    fake_github.add_comment(REPO, 7, forged, login="stranger", association="NONE")
    moved = marker(SECRET, REPO, Approval(8, HEAD, "approved", 1))  # a real marker of another PR, copied
    fake_github.add_comment(REPO, 7, moved, login="stranger", association="NONE")
    assert open_prs(approvals(fake_github))[7].approved is False


def test_preview_on_a_same_repository_pr_adds_the_required_label_and_removes_the_off_label(
    fake_github: FakeGitHub,
) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["preview/off", "bug"])
    result = commands(fake_github).handle(say(fake_github, 5, "/preview"))
    assert result == Result(reconcile=True)
    assert labels(fake_github, 5) == {"bug", "preview"}
    assert "deploying commit ` 111111111111 `" in answers(fake_github, 5)[0]


def test_destroy_adds_the_off_label_revokes_a_forks_approval_and_says_why(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True)
    source = approvals(fake_github)
    actions = commands(fake_github, source)
    actions.handle(say(fake_github, 7, "/preview"))

    result = actions.handle(say(fake_github, 7, "/preview destroy", login="lead"))

    assert result.reconcile and result.why == "lead asked for it with /preview destroy"
    assert "preview/off" in labels(fake_github, 7)
    assert open_prs(source)[7].approved is False
    assert open_prs(approvals(fake_github))[7].approved is False


def test_keep_adds_the_keep_label(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["preview"])
    assert commands(fake_github).handle(say(fake_github, 5, "/preview keep")) == Result()
    assert labels(fake_github, 5) == {"preview", "preview/keep"}
    assert "never expires" in answers(fake_github, 5)[0]


def test_sleep_and_wake_ask_the_sleep_source_and_reconcile_without_changing_labels(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["preview"])
    assert commands(fake_github).handle(say(fake_github, 5, "/preview sleep")) == Result(True, None, Request.SLEEP)
    assert commands(fake_github).handle(say(fake_github, 5, "/preview wake")) == Result(True, None, Request.WAKE)
    assert labels(fake_github, 5) == {"preview"}
    slept, woke = answers(fake_github, 5)
    assert "putting the environment to sleep" in slept and "`/preview wake` or push to wake it" in slept
    assert "waking the environment" in woke


def test_sleep_on_a_pr_labelled_preview_awake_is_answered_and_changes_nothing(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["preview", "preview/awake"])
    assert commands(fake_github).handle(say(fake_github, 5, "/preview sleep")) == Result()
    assert "stays awake" in answers(fake_github, 5)[0]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/preview please", "Not a command prenv knows"),
        ("/preview\nand more", "Not a command prenv knows"),
    ],
    ids=["trailing-word", "second-line"],
)
def test_unknown_commands_are_answered_and_change_nothing(fake_github: FakeGitHub, body: str, expected: str) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["bug"])
    assert commands(fake_github).handle(say(fake_github, 5, body)) == Result()
    assert labels(fake_github, 5) == {"bug"}
    [answer] = answers(fake_github, 5)
    assert expected in answer


def test_a_command_on_a_closed_pr_is_answered_without_deploying(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 5, sha=HEAD)
    command = say(fake_github, 5, "/preview")
    fake_github.close_pull(REPO, 5)
    assert commands(fake_github).handle(command) == Result()
    assert labels(fake_github, 5) == set()
    assert "closed" in answers(fake_github, 5)[0]


def edit(fake: FakeGitHub, command: Command, body: str) -> None:
    comment: dict[str, Any] = next(c for c in fake.repo(REPO).comments[command.pr] if c["id"] == command.comment)
    comment["body"] = body


def test_a_command_edited_or_deleted_before_it_is_carried_out_does_nothing(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True)
    edited = say(fake_github, 7, "/preview")
    edit(fake_github, edited, "never mind")
    deleted = say(fake_github, 7, "/preview")
    fake_github.repo(REPO).comments[7] = [c for c in fake_github.repo(REPO).comments[7] if c["id"] != deleted.comment]
    actions = commands(fake_github, approvals(fake_github))

    assert actions.handle(edited) == Result() and actions.handle(deleted) == Result()
    assert answers(fake_github, 7) == [] and labels(fake_github, 7) == set()


def test_a_replayed_command_is_recognised_by_its_answer_even_after_a_restart(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 7, sha=HEAD, fork=True)
    command = say(fake_github, 7, "/preview")
    assert commands(fake_github, approvals(fake_github)).handle(command).reconcile

    fake_github.add_pull(REPO, 7, sha="2" * 40, fork=True, labels=["preview"])  # a push, then the old delivery again
    source = approvals(fake_github)
    assert commands(fake_github, source).handle(command) == Result()
    assert len(answers(fake_github, 7)) == 1
    assert open_prs(source)[7].sha == HEAD, "the new commit is not approved by the replay"


def test_preview_on_a_pr_the_filters_still_refuse_says_why_and_deploys_once_they_allow_it(
    fake_github: FakeGitHub,
) -> None:
    filters = compile_filters(
        FilterSettings(labels=("preview",), title_exclude="^WIP"), extra_skip_labels=("preview/off",)
    )
    fake_github.add_pull(REPO, 5, sha=HEAD, labels=["preview/off"], title="WIP: half done")
    fake_github.add_pull(REPO, 6, sha=HEAD, labels=["preview/off"], title="Ready")
    actions = GitHubCommands(
        REPO,
        None,
        secret=SECRET,
        rules=RULES,
        filters=filters.apply,
        base_url=fake_github.base_url,
        seconds_between_requests=None,
    )

    assert actions.handle(say(fake_github, 5, "/preview")).reconcile
    assert actions.handle(say(fake_github, 6, "/preview")).reconcile

    assert labels(fake_github, 5) == {"preview"}
    assert "deploys once the filters allow it: ` title matches filters.title_exclude `" in answers(fake_github, 5)[0]
    assert "deploying commit" in answers(fake_github, 6)[0], "the off label it removes does not count"
