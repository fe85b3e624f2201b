"""The webhook endpoint through the ASGI app, with the real GitHub payloads: what is accepted, refused, ignored.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import logging
import time

import pytest

from prenv.gateway.fake import FakeGateway
from prenv.service.app import create_app
from prenv.service.webhooks import DeliveryLog, Verdict, decide, verify
from prenv.sources.fake import FakeSource
from testsupport.service_harness import (
    REPOSITORY,
    SECRET,
    TestClient,
    encode,
    for_pr,
    headers,
    make_service,
    payload,
    pull,
    wait_for,
)

PR_EVENTS = [
    "opened",
    "opened-null-body",
    "reopened",
    "synchronize",
    "labeled",
    "unlabeled",
    "closed",
    "ready_for_review",
    "converted_to_draft",
]


@pytest.fixture
def service_and_client():  # type: ignore[no-untyped-def]
    service = make_service()
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        yield service, client


@pytest.mark.parametrize("name", PR_EVENTS)
def test_a_signed_pull_request_event_is_accepted_and_queues_its_pr(service_and_client, name: str) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload(name))
    response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert response.status_code == 202
    assert response.json() == {"result": "queued", "pr": 2}
    assert service.queue.depth() == 1


def test_a_missing_signature_is_refused_and_queues_nothing(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("opened"))
    h = headers(body)
    del h["X-Hub-Signature-256"]
    response = client.post("/webhooks/github", content=body, headers=h)
    assert response.status_code == 401
    assert service.queue.depth() == 0


@pytest.mark.parametrize(
    "signature",
    ["sha256=" + "0" * 64, "sha1=abc", "", "sha256=", "SHA256=zz"],
    ids=["wrong-digest", "sha1", "empty", "prefix-only", "garbage"],
)
def test_a_wrong_signature_is_refused_and_queues_nothing(service_and_client, signature: str) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("opened"))
    response = client.post(
        "/webhooks/github", content=body, headers={**headers(body), "X-Hub-Signature-256": signature}
    )
    assert response.status_code == 401
    assert service.queue.depth() == 0


def test_a_signature_made_with_another_secret_is_refused(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("opened"))
    response = client.post("/webhooks/github", content=body, headers=headers(body, secret=b"other"))
    assert response.status_code == 401
    assert service.queue.depth() == 0


def test_a_body_changed_after_signing_is_refused(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("opened"))
    tampered = body.replace(b'"number": 2', b'"number": 3')
    assert tampered != body
    response = client.post("/webhooks/github", content=tampered, headers=headers(body))
    assert response.status_code == 401
    assert service.queue.depth() == 0


def test_a_replayed_delivery_is_acknowledged_but_not_queued_again(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("synchronize"))
    h = headers(body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert client.post("/webhooks/github", content=body, headers=h).status_code == 202
    service.queue._queued.clear()  # as if the first run had happened
    replay = client.post("/webhooks/github", content=body, headers=h)
    assert replay.status_code == 200
    assert replay.json() == {"result": "duplicate"}
    assert service.queue.depth() == 0


def test_an_oversized_body_is_refused_with_413_before_the_signature_is_checked() -> None:
    service = make_service(max_body_bytes=2048)
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = encode(payload("opened"))  # ~27 KB
        assert len(body) > 2048
        response = client.post("/webhooks/github", content=body, headers=headers(body))
        assert response.status_code == 413
        streamed = client.post(
            "/webhooks/github", content=iter([body[:1500], body[1500:]]), headers=headers(body)
        )  # chunked: no Content-Length, counted while streaming
        assert streamed.status_code == 413
    assert service.queue.depth() == 0


def test_the_default_body_limit_is_one_mebibyte() -> None:
    service = make_service()
    assert service.options.max_body_bytes == 1024 * 1024
    with TestClient(create_app(service, manage_lifecycle=False)) as client:
        body = b"{" + b" " * (1024 * 1024) + b"}"
        assert client.post("/webhooks/github", content=body, headers=headers(body)).status_code == 413


def test_an_unknown_event_is_ignored(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("push"))
    response = client.post("/webhooks/github", content=body, headers=headers(body, event="push"))
    assert response.status_code == 202
    assert response.json()["result"] == "ignored"
    assert service.queue.depth() == 0


def test_an_unknown_pull_request_action_is_ignored(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    data = payload("opened")
    data["action"] = "review_requested"
    body = encode(data)
    response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert response.status_code == 202
    assert response.json()["result"] == "ignored"
    assert service.queue.depth() == 0


def test_ping_is_answered_with_200(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = encode(payload("ping"))
    response = client.post("/webhooks/github", content=body, headers=headers(body, event="ping"))
    assert response.status_code == 200
    assert response.json() == {"result": "pong"}
    assert service.queue.depth() == 0


def test_an_event_of_another_repository_is_ignored(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    data = payload("opened")
    data["repository"]["full_name"] = "someone/else"
    body = encode(data)
    response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert response.status_code == 202
    assert response.json() == {"result": "ignored", "reason": "other-repository"}
    assert service.queue.depth() == 0


def test_a_signed_body_that_is_not_json_is_a_bad_request(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    body = b"not json \xff"
    assert client.post("/webhooks/github", content=body, headers=headers(body)).status_code == 400
    assert service.queue.depth() == 0


def test_many_events_for_one_queued_pr_queue_it_once(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    for name in ("opened", "labeled", "synchronize"):
        body = encode(payload(name))
        assert client.post("/webhooks/github", content=body, headers=headers(body)).status_code == 202
    assert service.queue.depth() == 1


def test_a_valid_webhook_starts_the_reconcile_of_its_pr_within_a_second() -> None:
    gateway = FakeGateway()
    service = make_service(FakeSource([pull(2)]), gateway)
    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.resyncs == 1, what="start-up resync")
        service.reconciler.source.set([pull(2, sha="b")])  # type: ignore[attr-defined]
        body = encode(payload("synchronize"))
        sent = time.monotonic()
        assert client.post("/webhooks/github", content=body, headers=headers(body)).status_code == 202
        wait_for(lambda: gateway.stacks[2].sha == "b" * 40, timeout=1.0, what="the reconcile of PR 2")
        assert time.monotonic() - sent < 1.0
        assert gateway.calls.count(("up", 2)) == 2


def test_webhooks_get_503_while_draining(service_and_client) -> None:  # type: ignore[no-untyped-def]
    service, client = service_and_client
    service.begin_drain()
    body = encode(payload("opened"))
    response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert response.status_code == 503
    assert service.queue.depth() == 0
    assert client.get("/readyz").status_code == 503


def test_the_secret_never_appears_in_logs_or_responses(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = make_service()
    secret = SECRET.decode()
    seen: list[str] = []
    with TestClient(create_app(service)) as client:
        for name, event, h_secret in [
            ("opened", "pull_request", SECRET),
            ("opened", "pull_request", b"wrong"),
            ("ping", "ping", SECRET),
            ("push", "push", SECRET),
        ]:
            body = encode(payload(name))
            r = client.post("/webhooks/github", content=body, headers=headers(body, event=event, secret=h_secret))
            seen += [r.text, str(r.headers)]
        for path in ("/healthz", "/readyz", "/metrics"):
            r = client.get(path)
            seen += [r.text, str(r.headers)]
    seen += [
        repr(service),
        repr(service.options),
        str(vars(service.options) if hasattr(service.options, "__dict__") else ""),
    ]
    assert caplog.records, "the service logs something"
    assert secret not in caplog.text
    assert all(secret not in text for text in seen)


def test_verify_accepts_only_the_exact_signature() -> None:
    body = b'{"a": 1}'
    from prenv.service.webhooks import sign

    good = sign(SECRET, body)
    assert verify(SECRET, body, good)
    assert not verify(SECRET, body, good.upper())
    assert not verify(SECRET, body + b" ", good)
    assert not verify(b"", body, sign(b"", body))
    assert not verify(SECRET, body, None)
    assert not verify(SECRET, body, good + "00")
    assert not verify(SECRET, body, "sha256=é" + good[8:])


def test_the_delivery_log_forgets_the_oldest_ids_first() -> None:
    log = DeliveryLog(capacity=2)
    assert log.first_time("a") and log.first_time("b")
    assert not log.first_time("a")  # a is now the most recent
    assert log.first_time("c")  # evicts b
    assert log.first_time("b")
    assert len(log) == 2


@pytest.mark.parametrize(
    ("event", "data", "verdict", "pr"),
    [
        (
            "pull_request",
            {"action": "opened", "number": 5, "repository": {"full_name": "codertocat/hello-world"}},
            Verdict.RECONCILE,
            5,
        ),
        (
            "pull_request",
            {"action": "opened", "number": True, "repository": {"full_name": REPOSITORY}},
            Verdict.MALFORMED,
            None,
        ),
        (
            "pull_request",
            {"action": "opened", "number": -1, "repository": {"full_name": REPOSITORY}},
            Verdict.MALFORMED,
            None,
        ),
        (
            "pull_request",
            {"action": "opened", "number": "5", "repository": {"full_name": REPOSITORY}},
            Verdict.MALFORMED,
            None,
        ),
        ("pull_request", {"action": "opened", "number": 5}, Verdict.OTHER_REPOSITORY, None),
        ("pull_request", [1, 2], Verdict.MALFORMED, None),
        ("pull_request", {"action": 3}, Verdict.IGNORED, None),
        ("issues", {"action": "opened"}, Verdict.IGNORED, None),
        (None, {}, Verdict.IGNORED, None),
        ("ping", None, Verdict.PONG, None),
    ],
    ids=[
        "case-insensitive-repo",
        "bool-number",
        "negative",
        "string-number",
        "no-repo",
        "not-object",
        "bad-action",
        "other-event",
        "no-event",
        "ping",
    ],
)
def test_decide_classifies_deliveries(event: str | None, data: object, verdict: Verdict, pr: int | None) -> None:
    decision = decide(event, data, REPOSITORY)
    assert decision.verdict is verdict
    assert decision.pr == pr


def test_a_derived_event_for_another_pr_queues_that_pr(service_and_client) -> None:  # type: ignore[no-untyped-def]
    _service, client = service_and_client
    body = encode(for_pr("opened", 41))
    response = client.post("/webhooks/github", content=body, headers=headers(body))
    assert response.json() == {"result": "queued", "pr": 41}
