"""FakeSource, the test stand-in, and the public surface of the sources package."""

from __future__ import annotations

import logging

import pytest

from prenv.errors import SourceError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources import PullRequestSource
from prenv.sources.fake import FakeSource


def pr(number: int, sha: str = "a" * 40) -> PullRequest:
    return PullRequest(number=number, sha=sha, branch=f"b{number}", base="main", author="a", title="t")


def test_a_fake_source_lists_what_it_was_given_sorted_by_number() -> None:
    source = FakeSource([pr(3), pr(1)])

    assert isinstance(source, PullRequestSource)
    assert source.list_open() == [pr(1), pr(3)]
    assert source.calls == 1


def test_upsert_and_close_model_prs_opening_changing_and_closing() -> None:
    source = FakeSource([pr(1)])
    source.upsert(pr(2))
    source.upsert(pr(1, sha="b" * 40))
    source.close(2)
    source.close(99)

    assert source.list_open() == [pr(1, sha="b" * 40)]


def test_an_injected_failure_is_raised_the_given_number_of_times_then_the_source_recovers() -> None:
    source = FakeSource([pr(1)])
    source.fail_next(SourceUnavailable("outage", delay=5), times=2)

    for _ in range(2):
        with pytest.raises(SourceUnavailable) as caught:
            source.list_open()
        assert caught.value.delay == 5
    assert source.list_open() == [pr(1)]
    assert source.calls == 3


def test_a_permanent_failure_lasts_until_cleared() -> None:
    source = FakeSource([pr(1)])
    source.fail_always(SourceError("bad credentials"))

    for _ in range(3):
        with pytest.raises(SourceError, match="bad credentials"):
            source.list_open()
    source.fail_always(None)
    assert source.list_open() == [pr(1)]


def test_raw_records_are_validated_like_a_real_sources(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.set_raw([{"number": 1, "sha": "c" * 40, "branch": "x"}, {"number": 2, "sha": "nope", "branch": "y"}])

    with caplog.at_level(logging.WARNING):
        prs = source.list_open()

    assert [p.number for p in prs] == [1]
    assert "PR #2: sha is not 40 hexadecimal characters" in caplog.records[0].getMessage()
