"""Random bodies and headers: never accepted without a valid signature, never a crash (5xx).

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prenv.service.app import create_app
from prenv.service.service import Service
from prenv.service.webhooks import sign
from testsupport.service_harness import SECRET, TestClient, encode, make_service, payload

_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
_bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        encode,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=20,
        ),
    ),
    st.sampled_from([encode(payload(n)) for n in ("opened", "closed", "ping", "push")]),
)
_signatures = st.one_of(
    st.none(),
    _header_text,
    st.builds(lambda b: sign(b"not-the-secret", b), st.binary(max_size=64)),
    st.builds(lambda h: "sha256=" + h, st.text("0123456789abcdef", min_size=64, max_size=64)),
)
_events = st.one_of(st.none(), st.sampled_from(["pull_request", "ping", "push", "issues"]), _header_text)


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[Service, TestClient]]:
    service = make_service(max_body_bytes=4096)
    with TestClient(create_app(service, manage_lifecycle=False), raise_server_exceptions=True) as client:
        yield service, client


def _check(
    app: tuple[Service, TestClient], body: bytes, signature: str | None, event: str | None, delivery: str | None
) -> None:
    service, client = app
    before = service.queue.depth()
    hdrs: dict[str, bytes] = {}  # bytes: HTTP headers are latin-1 on the wire, whatever a client sends
    if signature is not None:
        hdrs["X-Hub-Signature-256"] = signature.encode("latin-1")
    if event is not None:
        hdrs["X-GitHub-Event"] = event.encode("latin-1")
    if delivery is not None:
        hdrs["X-GitHub-Delivery"] = delivery.encode("latin-1")
    valid = signature == sign(SECRET, body)
    response = client.post("/webhooks/github", content=body, headers=hdrs)
    assert response.status_code < 500
    if not valid:
        assert response.status_code in (401, 413)
        assert service.queue.depth() == before


def _property(examples: int):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@_property(1000)
@given(body=_bodies, signature=_signatures, event=_events, delivery=st.none() | _header_text)
def test_random_requests_are_never_accepted_without_a_valid_signature(app, body, signature, event, delivery) -> None:  # type: ignore[no-untyped-def]
    _check(app, body, signature, event, delivery)


@_property(300)
@given(body=_bodies, event=_events, delivery=st.none() | _header_text)
def test_validly_signed_random_requests_never_crash_the_app(app, body, event, delivery) -> None:  # type: ignore[no-untyped-def]
    _check(app, body, sign(SECRET, body), event, delivery)


@pytest.mark.chaos
@_property(10_000)
@given(body=_bodies, signature=_signatures, event=_events, delivery=st.none() | _header_text)
def test_ten_thousand_random_requests_are_never_accepted_without_a_valid_signature(
    app, body, signature, event, delivery
) -> None:  # type: ignore[no-untyped-def]
    _check(app, body, signature, event, delivery)
