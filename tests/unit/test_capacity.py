"""Capacity: ``filters.max_environments`` with ``on_limit: queue | evict-idle``. Who holds a place keeps it, the
others queue by PR number (the order they were opened) and are told their position; a place that frees up goes to
the head of the queue in the same cycle; with ``evict-idle`` the environment deployed longest ago without
``preview/keep`` is destroyed to make room, and its PR is told why.

Stand-ins: FakeGateway (stacks in memory) and FakeSource (PRs in memory). Not end-to-end: tests/e2e/test_capacity.py
runs the same with the real engine, cluster and the fake GitHub.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from prenv.filters import DropReason, FilterResult, FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.model import ActionKind
from prenv.service.feedback import Phase, Report, render_comment
from prenv.sources.fake import FakeSource
from testsupport.service_harness import make_service, pull

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def queue_of(result: FilterResult) -> list[tuple[int, int | None]]:
    return [(d.pr.number, d.position) for d in result.queued()]


def test_prs_without_a_place_queue_by_number_and_are_told_their_position() -> None:
    filters = compile_filters(FilterSettings(max_environments=1))
    result = filters.apply([pull(9), pull(4), pull(7)], deployed={})
    assert [p.number for p in result.kept] == [4]
    assert queue_of(result) == [(7, 1), (9, 2)]
    assert "filters.max_environments is 1" in result.queued()[0].detail


def test_a_pr_that_holds_a_place_keeps_it_when_an_older_pr_asks_later() -> None:
    filters = compile_filters(FilterSettings(max_environments=1))
    result = filters.apply([pull(3), pull(8)], deployed={8: T0})
    assert [p.number for p in result.kept] == [8]
    assert queue_of(result) == [(3, 1)]
    assert result.admitted == ()


def test_when_an_environment_goes_the_head_of_the_queue_gets_its_place() -> None:
    filters = compile_filters(FilterSettings(max_environments=2))
    result = filters.apply([pull(2), pull(5), pull(6)], deployed={1: T0, 2: T0})  # PR 1 closed
    assert [p.number for p in result.kept] == [2, 5]
    assert result.admitted == (5,)
    assert queue_of(result) == [(6, 1)]


def test_evict_idle_destroys_the_environment_deployed_longest_ago_for_the_newcomer() -> None:
    filters = compile_filters(FilterSettings(max_environments=2, on_limit="evict-idle"))
    deployed = {1: T0, 2: T0 - timedelta(hours=5)}
    result = filters.apply([pull(1), pull(2), pull(3)], deployed=deployed)
    assert [p.number for p in result.kept] == [1, 3]
    (evicted,) = [d for d in result.dropped if d.reason is DropReason.EVICTED]
    assert (evicted.pr.number, evicted.evicted_for) == (2, 3)
    assert evicted.detail == "evicted to make room for PR #3; push or comment /preview to come back"
    assert result.queued() == []


def test_a_kept_environment_is_never_evicted_and_when_all_are_kept_the_newcomer_queues() -> None:
    filters = compile_filters(FilterSettings(max_environments=2, on_limit="evict-idle"))
    keep = frozenset({"preview/keep"})
    deployed = {1: T0, 2: T0 - timedelta(hours=5)}
    result = filters.apply([pull(1), pull(2, labels=keep), pull(3)], deployed=deployed)
    assert [(d.pr.number, d.evicted_for) for d in result.dropped if d.reason is DropReason.EVICTED] == [(1, 3)]

    everyone_kept = filters.apply([pull(1, labels=keep), pull(2, labels=keep), pull(3)], deployed=deployed)
    assert [p.number for p in everyone_kept.kept] == [1, 2]
    assert queue_of(everyone_kept) == [(3, 1)]


def test_an_evicted_pr_does_not_evict_back_until_it_is_pushed_to_or_asks_with_preview() -> None:
    filters = compile_filters(FilterSettings(max_environments=1, on_limit="evict-idle"))
    filters.apply([pull(1), pull(2)], deployed={1: T0})  # 1 evicted for 2
    after = filters.apply([pull(1), pull(2)], deployed={2: T0 + timedelta(minutes=1)})
    assert [p.number for p in after.kept] == [2]
    (waiting,) = after.queued()
    assert (waiting.pr.number, waiting.position, waiting.evicted_for) == (1, 1, 2)
    assert waiting.detail.startswith("evicted to make room for PR #2")

    pushed = filters.apply([pull(1, sha="b"), pull(2)], deployed={2: T0 + timedelta(minutes=1)})
    assert [p.number for p in pushed.kept] == [1], "a push makes it a newcomer: 2, deployed longest ago, goes"

    filters.apply([pull(1), pull(2)], deployed={1: T0})  # 1 evicted for 2 again
    filters.forgive(1)
    asked = filters.apply([pull(1), pull(2)], deployed={2: T0 + timedelta(minutes=1)})
    assert [p.number for p in asked.kept] == [1], "/preview brings it back the same way"


def test_an_evicted_pr_takes_a_place_that_frees_up() -> None:
    filters = compile_filters(FilterSettings(max_environments=1, on_limit="evict-idle"))
    filters.apply([pull(1), pull(2)], deployed={1: T0})
    assert [p.number for p in filters.apply([pull(1)], deployed={2: T0}).kept] == [1]


def test_without_the_stacks_the_lowest_numbers_are_kept_as_before() -> None:
    result = compile_filters(FilterSettings(max_environments=1, on_limit="evict-idle")).apply([pull(2), pull(1)])
    assert [p.number for p in result.kept] == [1]
    assert queue_of(result) == [(2, 1)]


def test_on_limit_accepts_only_queue_or_evict_idle() -> None:
    with pytest.raises(ValueError, match="on_limit"):
        FilterSettings(on_limit="evict-all")  # type: ignore[arg-type]


# --- the service: comments, the same cycle, metrics ----------------------------------------------------------


class Told:
    def __init__(self) -> None:
        self.reports: list[Report] = []

    def report(self, report: Report) -> None:
        self.reports.append(report)

    def of(self, pr: int) -> list[Report]:
        return [r for r in self.reports if r.pr == pr]


def test_a_queued_pr_is_told_its_position_once_and_deployed_in_the_cycle_that_frees_a_place() -> None:
    source, gateway, told = FakeSource([pull(1), pull(2), pull(3)]), FakeGateway(), Told()
    service = make_service(source, gateway, feedback=told, filters=FilterSettings(max_environments=1))
    service.reconciler.sync()
    assert set(gateway.stacks) == {1}
    assert [(r.pr, r.phase, r.position) for r in told.reports if r.phase is Phase.QUEUED] == [
        (2, Phase.QUEUED, 1),
        (3, Phase.QUEUED, 2),
    ]
    comment = render_comment(told.of(2)[-1], pull(2), None)
    assert "waiting for a free environment" in comment and "position 1" in comment
    assert service.metrics.registry.get_sample_value("prenv_queued_environments") == 2

    before = len(told.reports)
    service.reconciler.sync()
    assert len(told.reports) == before, "an unchanged queue is not told again"

    source.close(1)
    result = service.reconciler.sync(only=1)  # the webhook of the closed PR
    assert result.plan.of(ActionKind.DESTROY) == [1] and result.plan.of(ActionKind.CREATE) == [2]
    assert set(gateway.stacks) == {2}
    assert [(r.phase, r.position) for r in told.of(3)][-1] == (Phase.QUEUED, 1), "3 moved up"
    assert service.metrics.registry.get_sample_value("prenv_queued_environments") == 1


def test_evict_idle_tears_the_idle_environment_down_tells_its_pr_why_and_counts_it() -> None:
    source, gateway, told = FakeSource([pull(1), pull(2)]), FakeGateway(), Told()
    service = make_service(
        source, gateway, feedback=told, filters=FilterSettings(max_environments=2, on_limit="evict-idle")
    )
    service.reconciler.sync()
    gateway.stacks[1] = replace(gateway.stacks[1], last_update=T0 - timedelta(days=2))
    gateway.stacks[2] = replace(gateway.stacks[2], last_update=T0)
    source.upsert(pull(3))
    result = service.reconciler.sync(only=3)  # the webhook of the new PR
    assert (result.plan.of(ActionKind.DESTROY), result.plan.of(ActionKind.CREATE)) == ([1], [3])
    assert set(gateway.stacks) == {2, 3}
    torn = told.of(1)[-1]
    assert torn.phase is Phase.TORN_DOWN
    assert torn.reason == "evicted to make room for PR #3; push or comment /preview to come back"
    assert service.metrics.registry.get_sample_value("prenv_evictions_total") == 1
