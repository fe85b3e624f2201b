"""TTL rules: which environments expire, and what brings them back.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from prenv.gateway.fake import FakeGateway
from prenv.model import PullRequest, StackState
from prenv.service.ttl import Fingerprint, TtlPolicy, TtlSource, expiry_of, parse_duration, ttl_for
from prenv.sources.fake import FakeSource

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def pr(labels: tuple[str, ...] = (), updated: datetime | None = None, sha: str = "a", n: int = 7) -> PullRequest:
    return PullRequest(
        number=n,
        sha=sha * 40,
        branch="b",
        base="main",
        author="u",
        title="t",
        labels=frozenset(labels),
        updated_at=updated,
    )


def stack(created: datetime | None, n: int = 7) -> StackState:
    return StackState(pr=n, stack=f"pr-{n}", sha="a" * 40, config_hash="h", created_at=created, result="succeeded")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ((), timedelta(hours=48)),
        (("preview/keep",), None),
        (("preview/keep", "preview/ttl-2h"), None),
        (("preview/ttl-6h",), timedelta(hours=6)),
        (("preview/ttl-3d",), timedelta(days=3)),
        (("preview/ttl-2h", "preview/ttl-1d"), timedelta(days=1)),
        (("preview/ttl-0h",), timedelta(hours=48)),
        (("preview/ttl-abc",), timedelta(hours=48)),
        (("preview/ttl-12",), timedelta(hours=48)),
        (("preview/ttl-99999d",), timedelta(hours=48)),
        (("bug", "preview/ttl-1h"), timedelta(hours=1)),
    ],
    ids=[
        "default",
        "keep",
        "keep-beats-ttl",
        "hours",
        "days",
        "longest-wins",
        "zero-ignored",
        "garbage-ignored",
        "unit-missing-ignored",
        "too-long-ignored",
        "other-labels-irrelevant",
    ],
)
def test_ttl_comes_from_the_label_or_the_default(labels: tuple[str, ...], expected: timedelta | None) -> None:
    assert ttl_for(pr(labels)) == expected


@pytest.mark.parametrize(
    ("labels", "created", "updated", "expired"),
    [
        ((), NOW - 47 * H, None, False),
        ((), NOW - 48 * H, None, True),
        ((), NOW - 100 * H, NOW - 49 * H, True),
        ((), NOW - 1 * H, NOW - 100 * H, False),
        ((), None, NOW - 49 * H, True),
        ((), None, NOW - 1 * H, False),
        ((), None, None, False),
        (("preview/keep",), NOW - 1000 * H, NOW - 1000 * H, False),
        (("preview/ttl-2h",), NOW - 3 * H, None, True),
        (("preview/ttl-2h",), NOW - 1 * H, None, False),
        (("preview/ttl-7d",), NOW - 100 * H, None, False),
    ],
    ids=[
        "young-stack",
        "stack-at-ttl",
        "old-push-and-old-stack",
        "recent-stack-after-old-activity",
        "no-stack-idle-pr",
        "no-stack-recent-activity",
        "nothing-known-never-expires",
        "keep-label",
        "short-label-expires",
        "short-label-not-yet",
        "long-label",
    ],
)
def test_expiry_counts_from_the_stack_or_for_a_pr_without_one_from_its_activity(
    labels: tuple[str, ...], created: datetime | None, updated: datetime | None, expired: bool
) -> None:
    verdict = expiry_of(pr(labels, updated), stack(created) if created else None, NOW)
    assert verdict.expired is expired
    assert verdict.pr == 7


def test_expiry_counts_from_the_last_push_not_from_comments_or_labels() -> None:
    deployed_long_ago = StackState(
        pr=7, stack="pr-7", sha="a" * 40, config_hash="h", created_at=NOW - 100 * H, last_update=NOW - 60 * H
    )
    commented = pr(("preview", "bug"), updated=NOW - 1 * H)  # a comment or a label bumped updated_at
    assert expiry_of(commented, deployed_long_ago, NOW).expired

    redeployed = dataclasses.replace(deployed_long_ago, last_update=NOW - 2 * H)  # the last push was deployed 2 h ago
    assert not expiry_of(commented, redeployed, NOW).expired

    pushed = pr(updated=NOW - 1 * H, sha="b")  # a push not deployed yet
    verdict = expiry_of(pushed, deployed_long_ago, NOW)
    assert not verdict.expired and verdict.expires_at == NOW - 1 * H + 48 * H


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("48h", timedelta(hours=48)), ("7d", timedelta(days=7)), ("0h", None)],
)
def test_the_templates_ttl_is_read_as_a_duration(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


def test_an_expired_pr_stays_expired_until_a_push_or_a_label_change() -> None:
    gone = pr(updated=NOW - 100 * H)
    memory = Fingerprint.of(gone)
    bumped = pr(updated=NOW)  # e.g. our own teardown comment bumped updated_at
    assert expiry_of(bumped, None, NOW, expired_as=memory).expired
    assert not expiry_of(pr(updated=NOW, sha="b"), None, NOW, expired_as=memory).expired
    assert not expiry_of(pr(("preview/ttl-3d",), updated=NOW), None, NOW, expired_as=memory).expired


def test_a_naive_timestamp_is_read_as_utc() -> None:
    naive = (NOW - 49 * H).replace(tzinfo=None)
    assert expiry_of(pr(), stack(naive), NOW).expired


def test_custom_policy_changes_default_and_labels() -> None:
    policy = TtlPolicy(default=timedelta(hours=1), keep_label="pin", label_prefix="ttl/")
    assert ttl_for(pr(("ttl/5h",)), policy) == timedelta(hours=5)
    assert ttl_for(pr(("pin",)), policy) is None
    assert expiry_of(pr(), stack(NOW - 2 * H), NOW, policy).expired


def test_the_ttl_source_hides_expired_prs_and_tells_once() -> None:
    old, fresh = pr(n=1, updated=NOW - 60 * H), pr(n=2, updated=NOW - 1 * H)
    pushed_lately = dataclasses.replace(stack(NOW - 60 * H, n=2), last_update=NOW - 1 * H)
    gateway = FakeGateway(stacks={1: stack(NOW - 60 * H, n=1), 2: pushed_lately})
    told: list[int] = []
    src = TtlSource(
        FakeSource([old, fresh]), gateway.list_stacks, clock=lambda: NOW, on_expire=lambda p, v: told.append(p.number)
    )
    assert [p.number for p in src.list_open()] == [2]
    gateway.stacks.pop(1)  # the reconciler destroyed it
    assert [p.number for p in src.list_open()] == [2]
    assert told == [1]
    assert src.expired() == frozenset({1})


def test_a_push_to_an_expired_pr_brings_it_back() -> None:
    source = FakeSource([pr(n=1, updated=NOW - 60 * H)])
    src = TtlSource(source, lambda: [], clock=lambda: NOW)
    assert src.list_open() == []
    pushed = pr(n=1, updated=NOW, sha="c")
    source.upsert(pushed)
    assert src.list_open() == [pushed]
    assert src.expired() == frozenset()


def test_a_closed_pr_is_forgotten() -> None:
    source = FakeSource([pr(n=1, updated=NOW - 60 * H)])
    src = TtlSource(source, lambda: [], clock=lambda: NOW)
    src.list_open()
    source.close(1)
    src.list_open()
    assert src.expired() == frozenset()
