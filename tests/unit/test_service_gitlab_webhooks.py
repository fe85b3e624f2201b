"""The GitLab webhook endpoint through the ASGI app, with payloads shaped after GitLab's documented examples: what is
accepted, refused, ignored; and the GitHub push events of branch environments."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from prenv import naming
from prenv.gateway.fake import FakeGateway
from prenv.service.app import create_app
from prenv.service.gitlab_webhooks import decide, delivery_id, verify_token
from prenv.service.webhooks import Verdict
from prenv.service.webhooks import decide as decide_github
from prenv.sources.branches import branch_records
from prenv.sources.fake import FakeSource
from testsupport.service_harness import (
    REPOSITORY,
    SECRET,
    TestClient,
    encode,
    headers,
    make_service,
    payload,
    pull,
    wait_for,
)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "gitlab-webhooks"
PROJECT = "gitlabhq/gitlab-test"  # the project of every fixture (id 14)


def gitlab(name: str, iid: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    if iid is not None:
        data["object_attributes"]["iid"] = iid
    return data


def gl_headers(event: str = "Merge Request Hook", *, token: bytes = SECRET, key: str | None = None) -> dict[str, str]:
    return {
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token.decode(),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": key or str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "Content-Type": "application/json",
    }


# --- the rules, without HTTP -----------------------------------------------------------------------------------

DECISIONS = [
    ("merge_request_open", Verdict.RECONCILE, "opened"),
    ("merge_request_reopen", Verdict.RECONCILE, "reopened"),
    ("merge_request_update_commits", Verdict.RECONCILE, "synchronize"),
    ("merge_request_update_labels", Verdict.RECONCILE, "updated"),
    ("merge_request_update_draft", Verdict.RECONCILE, "updated"),
    ("merge_request_close", Verdict.RECONCILE, "closed"),
    ("merge_request_merge", Verdict.RECONCILE, "merged"),
    ("merge_request_update_description", Verdict.IGNORED, None),
    ("merge_request_approved", Verdict.IGNORED, None),
]


@pytest.mark.parametrize(("name", "verdict", "action"), DECISIONS, ids=[d[0] for d in DECISIONS])
def test_merge_request_actions_that_can_change_an_environment_reconcile_that_mr(
    name: str, verdict: Verdict, action: str | None
) -> None:
    decision = decide("Merge Request Hook", gitlab(name), PROJECT)

    assert decision.verdict is verdict
    assert decision.action == action
    assert decision.pr == (1 if verdict is Verdict.RECONCILE else None)


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("Note Hook", "note_merge_request"),
        ("Push Hook", "push"),
        ("Pipeline Hook", "merge_request_open"),
        (None, "push"),
    ],
    ids=["note", "push without branch source", "other event", "no event header"],
)
def test_other_events_are_ignored_for_a_merge_request_source(event: str | None, name: str) -> None:
    assert decide(event, gitlab(name), PROJECT).verdict is Verdict.IGNORED


def test_the_project_is_matched_by_path_case_insensitively_or_by_numeric_id() -> None:
    body = gitlab("merge_request_open")

    assert decide("Merge Request Hook", body, "GitLabHQ/GitLab-Test").verdict is Verdict.RECONCILE
    assert decide("Merge Request Hook", body, "14").verdict is Verdict.RECONCILE
    assert decide("Merge Request Hook", body, "15").verdict is Verdict.OTHER_REPOSITORY
    assert decide("Merge Request Hook", body, "other/project").verdict is Verdict.OTHER_REPOSITORY
    assert decide("Merge Request Hook", body, None).verdict is Verdict.RECONCILE


@pytest.mark.parametrize("iid", ["1", True, 0, -3, 2**40, naming.BRANCH_NUMBER_BASE, None], ids=lambda v: f"iid={v!r}")
def test_an_mr_without_a_valid_iid_is_malformed(iid: object) -> None:
    body = gitlab("merge_request_open")
    body["object_attributes"]["iid"] = iid

    assert decide("Merge Request Hook", body, PROJECT).verdict is Verdict.MALFORMED


@pytest.mark.parametrize("body", [[], "x", 3, {"object_attributes": "x"}], ids=["list", "str", "int", "attrs"])
def test_a_body_that_is_not_an_mr_event_is_malformed(body: object) -> None:
    assert decide("Merge Request Hook", body, PROJECT).verdict is Verdict.MALFORMED


def test_a_push_to_a_branch_reconciles_that_branch_environment_for_a_branch_source() -> None:
    pushed = decide("Push Hook", gitlab("push"), PROJECT, branches=True)
    deleted = decide("Push Hook", gitlab("push_branch_deleted"), PROJECT, branches=True)

    assert (pushed.verdict, pushed.pr, pushed.action) == (
        Verdict.RECONCILE,
        naming.branch_number("release/1.2"),
        "pushed",
    )
    assert (deleted.verdict, deleted.pr, deleted.action) == (Verdict.RECONCILE, pushed.pr, "branch-deleted")
    assert decide("Merge Request Hook", gitlab("merge_request_open"), PROJECT, branches=True).verdict is (
        Verdict.IGNORED
    )


def test_a_tag_push_is_ignored_and_a_hostile_branch_name_only_becomes_a_number() -> None:
    tag = gitlab("push")
    tag["ref"] = "refs/tags/v1.0"
    hostile = gitlab("push")
    hostile["ref"] = "refs/heads/'; DROP TABLE x; --$(id)"

    assert decide("Push Hook", tag, PROJECT, branches=True).verdict is Verdict.IGNORED
    decision = decide("Push Hook", hostile, PROJECT, branches=True)
    assert decision.pr == naming.branch_number("'; DROP TABLE x; --$(id)")
    assert naming.stack_name(decision.pr) == f"pr-{decision.pr}"


def test_a_github_push_reconciles_a_branch_environment_only_for_a_branch_source() -> None:
    push = payload("push")
    push["ref"] = "refs/heads/release/2.0"
    repository = push["repository"]["full_name"]

    assert decide_github("push", push, repository).verdict is Verdict.IGNORED
    decision = decide_github("push", push, repository, branches=True)
    assert (decision.verdict, decision.pr) == (Verdict.RECONCILE, naming.branch_number("release/2.0"))
    assert decide_github("push", payload("push"), repository, branches=True).verdict is Verdict.IGNORED  # a tag
    assert decide_github("pull_request", payload("opened"), repository, branches=True).verdict is Verdict.IGNORED
    push["deleted"] = True
    assert decide_github("push", push, repository, branches=True).action == "branch-deleted"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (SECRET.decode(), True),
        (None, False),
        ("", False),
        ("wrong", False),
        (SECRET.decode() + " ", False),
        ("sha256=" + SECRET.decode(), False),
        ("ünïcödé", False),
    ],
    ids=["right", "missing", "empty", "wrong", "trailing space", "prefixed", "non-ascii"],
)
def test_the_token_must_be_exactly_the_secret(header: str | None, ok: bool) -> None:
    assert verify_token(SECRET, header) is ok
    assert verify_token(b"", header) is False


def test_the_delivery_is_named_by_the_idempotency_key_first() -> None:
    assert delivery_id({"idempotency-key": "k", "x-gitlab-event-uuid": "u"}) == "gitlab:k"
    assert delivery_id({"x-gitlab-event-uuid": "u"}) == "gitlab:u"
    assert delivery_id({}) is None


# --- through the ASGI app --------------------------------------------------------------------------------------


@pytest.fixture
def service_and_client():  # type: ignore[no-untyped-def]
    service = make_service(gitlab_project=PROJECT)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        yield service, client


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong-token", SECRET.decode()[:-1]],
    ids=["missing", "empty", "wrong", "prefix of the secret"],
)
def test_a_missing_or_wrong_token_is_refused_and_nothing_happens(service_and_client, token: str | None) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    h = gl_headers()
    if token is None:
        del h["X-Gitlab-Token"]
    else:
        h["X-Gitlab-Token"] = token

    response = client.post("/webhooks/gitlab", content=encode(gitlab("merge_request_open")), headers=h)

    assert response.status_code == 401
    assert response.json() == {"result": "unauthorized"}
    assert service.queue.depth() == 0
    assert len(service.deliveries) == 0  # not even the delivery id is remembered
    assert SECRET.decode() not in response.text


def test_a_github_signature_does_not_open_the_gitlab_endpoint_nor_the_reverse(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(gitlab("merge_request_open"))
    from prenv.service.webhooks import sign

    github_style = {"X-Gitlab-Event": "Merge Request Hook", "X-Hub-Signature-256": sign(SECRET, body)}
    assert client.post("/webhooks/gitlab", content=body, headers=github_style).status_code == 401
    assert client.post("/webhooks/github", content=body, headers=gl_headers()).status_code == 401
    assert service.queue.depth() == 0


def test_an_authentic_mr_event_queues_its_mr_and_a_redelivery_is_dropped(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(gitlab("merge_request_open", iid=7))
    h = gl_headers(key="delivery-1")

    first = client.post("/webhooks/gitlab", content=body, headers=h)
    again = client.post("/webhooks/gitlab", content=body, headers={**h, "X-Gitlab-Event-UUID": "other"})

    assert (first.status_code, first.json()) == (202, {"result": "queued", "pr": 7})
    assert (again.status_code, again.json()) == (200, {"result": "duplicate"})
    assert service.queue.depth() == 1


def test_events_of_another_project_or_irrelevant_actions_are_acknowledged_and_ignored(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    other = gitlab("merge_request_open")
    other["project"]["path_with_namespace"] = "someone/else"

    responses = [
        client.post("/webhooks/gitlab", content=encode(other), headers=gl_headers()),
        client.post("/webhooks/gitlab", content=encode(gitlab("merge_request_approved")), headers=gl_headers()),
        client.post("/webhooks/gitlab", content=encode(gitlab("note_merge_request")), headers=gl_headers("Note Hook")),
    ]

    assert [r.status_code for r in responses] == [202, 202, 202]
    assert [r.json()["reason"] for r in responses] == ["other-repository", "ignored", "ignored"]
    assert service.queue.depth() == 0


def test_an_oversized_or_unparsable_body_is_refused(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    big = b"{" + b" " * (service.options.max_body_bytes + 1) + b"}"

    assert client.post("/webhooks/gitlab", content=big, headers=gl_headers()).status_code == 413
    assert client.post("/webhooks/gitlab", content=b"{not json", headers=gl_headers()).status_code == 400
    assert service.queue.depth() == 0


def test_mr_open_requests_an_environment_and_close_destroys_it() -> None:
    source = FakeSource([pull(3)])
    gateway = FakeGateway()
    service = make_service(source, gateway, gitlab_project=PROJECT)
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.ready, what="first resync")
        source.upsert(pull(5))
        opened = client.post("/webhooks/gitlab", content=encode(gitlab("merge_request_open", 5)), headers=gl_headers())
        assert opened.json() == {"result": "queued", "pr": 5}
        wait_for(lambda: 5 in gateway.stacks and gateway.stacks[5].result == "succeeded", what="MR !5 deployed")

        source.close(5)
        closed = client.post("/webhooks/gitlab", content=encode(gitlab("merge_request_close", 5)), headers=gl_headers())
        assert closed.json() == {"result": "queued", "pr": 5}
        wait_for(lambda: 5 not in gateway.stacks, what="MR !5 destroyed")

    assert 3 in gateway.stacks  # the other MR was left alone


def test_a_branch_push_and_deletion_reconcile_the_branch_environment() -> None:
    branch = naming.branch_number("release/1.2")
    [record] = branch_records([("release/1.2", "b" * 40)], source="test")
    source = FakeSource([])
    gateway = FakeGateway()
    service = make_service(source, gateway, gitlab_project=PROJECT, branches=True)
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.ready, what="first resync")
        source.upsert(record)
        pushed = client.post("/webhooks/gitlab", content=encode(gitlab("push")), headers=gl_headers("Push Hook"))
        assert pushed.json() == {"result": "queued", "pr": branch}
        wait_for(lambda: branch in gateway.stacks, what="branch environment deployed")

        source.close(branch)
        deleted = gitlab("push_branch_deleted")
        client.post("/webhooks/gitlab", content=encode(deleted), headers=gl_headers("Push Hook"))
        wait_for(lambda: branch not in gateway.stacks, what="branch environment destroyed")


def test_a_github_push_to_a_matching_branch_deploys_it_and_its_deletion_destroys_it() -> None:
    branch = naming.branch_number("release/2.0")
    [record] = branch_records([("release/2.0", "d" * 40)], source="test")
    source = FakeSource([])
    gateway = FakeGateway()
    service = make_service(source, gateway, branches=True)
    push = payload("push")
    push.update({"ref": "refs/heads/release/2.0", "deleted": False})
    push["repository"]["full_name"] = REPOSITORY
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.ready, what="first resync")
        source.upsert(record)
        body = encode(push)
        pushed = client.post("/webhooks/github", content=body, headers=headers(body, "push"))
        assert pushed.json() == {"result": "queued", "pr": branch}
        wait_for(lambda: branch in gateway.stacks, what="branch environment deployed")

        source.close(branch)
        body = encode({**push, "deleted": True})
        client.post("/webhooks/github", content=body, headers=headers(body, "push"))
        wait_for(lambda: branch not in gateway.stacks, what="branch environment destroyed")
