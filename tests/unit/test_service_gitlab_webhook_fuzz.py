"""Random bodies and headers on the GitLab endpoint: never accepted without the token, never a crash (5xx); with the
token, random JSON never queues anything but a valid MR iid or a branch number.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prenv import naming
from prenv.service.app import create_app
from prenv.service.gitlab_webhooks import decide
from prenv.service.service import Service
from prenv.service.webhooks import Verdict
from testsupport.service_harness import SECRET, TestClient, encode, make_service

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "gitlab-webhooks"
PROJECT = "gitlabhq/gitlab-test"

_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    max_leaves=20,
)
_fixtures = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("*.json"))]
_bodies = st.one_of(st.binary(max_size=2048), st.builds(encode, _json), st.sampled_from([encode(f) for f in _fixtures]))
_tokens = st.one_of(st.none(), _header_text, st.just(SECRET.decode()))
_events = st.one_of(
    st.none(), st.sampled_from(["Merge Request Hook", "Push Hook", "Note Hook", "System Hook"]), _header_text
)


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[Service, TestClient]]:
    service = make_service(max_body_bytes=4096, gitlab_project=PROJECT)
    with TestClient(create_app(service, manage_lifecycle=False), raise_server_exceptions=True) as client:
        yield service, client


def _property(examples: int):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@_property(500)
@given(body=_bodies, token=_tokens, event=_events, key=st.none() | _header_text)
def test_random_requests_are_never_accepted_without_the_token(app, body, token, event, key) -> None:  # type: ignore[no-untyped-def]
    service, client = app
    before = service.queue.depth()
    hdrs: dict[str, bytes] = {}  # bytes: HTTP headers are latin-1 on the wire, whatever a client sends
    if token is not None:
        hdrs["X-Gitlab-Token"] = token.encode("latin-1")
    if event is not None:
        hdrs["X-Gitlab-Event"] = event.encode("latin-1")
    if key is not None:
        hdrs["Idempotency-Key"] = key.encode("latin-1")

    response = client.post("/webhooks/gitlab", content=body, headers=hdrs)

    assert response.status_code < 500
    if token != SECRET.decode():
        assert response.status_code in (401, 413)
        assert service.queue.depth() == before


@_property(1000)
@given(
    payload=st.one_of(
        _json,
        st.sampled_from(_fixtures),
        st.builds(
            lambda d, f: {**f, **d},
            st.dictionaries(st.sampled_from(["object_attributes", "project", "ref", "after", "changes"]), _json),
            st.sampled_from(_fixtures),
        ),
    ),
    event=_events,
    branches=st.booleans(),
)
def test_decide_never_raises_and_only_names_valid_numbers(payload: object, event: str | None, branches: bool) -> None:
    decision = decide(event, payload, PROJECT, branches=branches)

    if decision.verdict is Verdict.RECONCILE:
        assert decision.pr is not None
        assert naming.stack_name(decision.pr).startswith("pr-")
        assert naming.is_branch_number(decision.pr) is branches
    else:
        assert decision.pr is None
