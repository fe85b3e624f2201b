"""``/preview`` comments: which text is a command, which comment events count, and what the webhook endpoint does with
them (GitHub's ``issue_comment`` payload shape, tests/data/github-webhooks/issue_comment.json).

Stand-ins: FakeGateway and FakeSource (through make_service) and a recording CommandActions; carrying commands out
against GitHub is tested in tests/integration/test_command_actions.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from prenv.service.app import create_app
from prenv.service.command_actions import Result
from prenv.service.commands import Command, Ignored, Verb, command_of, parse
from prenv.service.webhooks import Verdict, decide
from testsupport.service_harness import REPOSITORY, TestClient, encode, headers, make_service, payload, wait_for


@pytest.mark.parametrize(
    ("body", "verb"),
    [
        ("/preview", Verb.DEPLOY),
        ("  /preview \n", Verb.DEPLOY),
        ("/preview destroy", Verb.DESTROY),
        ("/preview   keep", Verb.KEEP),
        ("/preview sleep", Verb.SLEEP),
        ("/preview wake", Verb.WAKE),
        ("/preview please", Verb.UNKNOWN),
        ("/preview destroy now", Verb.UNKNOWN),
        ("/preview\nthanks!", Verb.UNKNOWN),
        ("/preview destroy\n/preview", Verb.UNKNOWN),
        ("/preview DESTROY", Verb.UNKNOWN),
        ("/preview " + "x" * 2000, Verb.UNKNOWN),
        ("/previews", None),
        ("/Preview", None),
        ("please /preview", None),
        ("LGTM", None),
        ("", None),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_only_a_whole_comment_of_a_known_verb_is_a_command(body: str, verb: Verb | None) -> None:
    assert parse(body) is verb


def comment(body: str = "/preview", **changes: Any) -> dict[str, Any]:
    data = payload("issue_comment")
    data["comment"]["body"] = body
    for key, value in changes.items():
        data[key] = value
    return data


def test_the_documented_payload_is_a_command_with_its_commenter_and_association() -> None:
    found = command_of(comment("/preview destroy"))
    assert found == Command(2, Verb.DESTROY, 492700401, "/preview destroy", "Codertocat", "OWNER")


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_an_edited_or_deleted_comment_does_nothing(action: str) -> None:
    assert command_of(comment(action=action)) is Ignored.NOT_CREATED


def test_a_comment_on_an_issue_that_is_not_a_pull_request_does_nothing() -> None:
    data = comment()
    del data["issue"]["pull_request"]
    assert command_of(data) is Ignored.NOT_A_PULL_REQUEST


def test_a_comment_that_is_no_command_and_a_bot_comment_do_nothing() -> None:
    assert command_of(comment("Looks good to me")) is Ignored.NOT_A_COMMAND
    bot = comment()
    bot["comment"]["user"]["type"] = "Bot"
    assert command_of(bot) is Ignored.FROM_A_BOT


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["comment"].update(id="1"),
        lambda d: d["comment"].update(id=True),
        lambda d: d["issue"].update(number=-2),
        lambda d: d["comment"]["user"].update(login="evil; rm -rf /"),
        lambda d: d["comment"].update(author_association=None),
        lambda d: d.update(issue="2"),
    ],
    ids=["string-id", "bool-id", "negative-number", "bad-login", "no-association", "issue-not-object"],
)
def test_a_malformed_command_payload_is_refused(spoil: Any) -> None:
    data = comment()
    spoil(data)
    assert command_of(data) is None


def test_the_webhook_decision_names_the_command_and_checks_the_repository() -> None:
    decision = decide("issue_comment", comment(), REPOSITORY)
    assert decision.verdict is Verdict.COMMAND
    assert decision.pr == 2 and decision.command is not None and decision.command.verb is Verb.DEPLOY
    assert decide("issue_comment", comment(), "other/repo").verdict is Verdict.OTHER_REPOSITORY
    assert decide("issue_comment", comment(), REPOSITORY, branches=True).verdict is Verdict.IGNORED


def test_a_pull_request_edit_reconciles_that_pr_at_once() -> None:
    data = payload("opened")
    data["action"] = "edited"
    assert decide("pull_request", data, REPOSITORY).verdict is Verdict.RECONCILE


class Recording:
    def __init__(self, result: Result) -> None:
        self.result = result
        self.handled: list[Command] = []

    def handle(self, command: Command) -> Result:
        self.handled.append(command)
        return self.result


def test_a_signed_command_is_carried_out_and_its_pr_reconciled() -> None:
    actions = Recording(Result(reconcile=True))
    service = make_service(commands=actions)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = encode(comment())
        response = client.post("/webhooks/github", content=body, headers=headers(body, "issue_comment"))
        assert response.status_code == 202
        assert response.json() == {"result": "command-queued", "pr": 2}
        wait_for(lambda: len(actions.handled) == 1, what="the command")
        wait_for(lambda: service.queue.depth() == 1 or service.queue.runs >= 1, what="the reconcile")


def test_a_command_that_asks_for_nothing_does_not_reconcile() -> None:
    actions = Recording(Result(reconcile=False))
    service = make_service(commands=actions)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = encode(comment("/preview sleep"))
        assert client.post("/webhooks/github", content=body, headers=headers(body, "issue_comment")).status_code == 202
        wait_for(lambda: len(actions.handled) == 1, what="the command")
        assert service.queue.depth() == 0 and service.queue.runs == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (comment(action="edited"), "comment-edited-or-deleted"),
        (comment("thanks"), "not-a-command"),
    ],
    ids=["edited", "not-a-command"],
)
def test_comments_that_are_no_commands_are_acknowledged_and_ignored(data: dict[str, Any], reason: str) -> None:
    actions = Recording(Result(reconcile=True))
    service = make_service(commands=actions)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = encode(data)
        response = client.post("/webhooks/github", content=body, headers=headers(body, "issue_comment"))
        assert response.json() == {"result": "ignored", "reason": reason}
    assert actions.handled == []


def test_a_replayed_delivery_is_dropped_before_the_command() -> None:
    actions = Recording(Result(reconcile=False))
    service = make_service(commands=actions)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = encode(comment())
        first = headers(body, "issue_comment", delivery="d-1")
        assert client.post("/webhooks/github", content=body, headers=first).json()["result"] == "command-queued"
        assert client.post("/webhooks/github", content=body, headers=first).json()["result"] == "duplicate"
        wait_for(lambda: len(actions.handled) == 1, what="the command")
    assert len(actions.handled) == 1
