"""The reconciler against a fake source and a fake stack gateway: the plan for each situation, and its guards.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest

from prenv.errors import SourceUnavailable, StackLocked, StackOperationError
from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.model import ActionKind, DesiredEnvironment, PullRequest, StackState
from prenv.reconcile import Reconciler, ReconcileSettings, RetryState, SkipReason, make_plan
from prenv.sources.base import ImageGate
from prenv.sources.fake import FakeSource

HASH = "cfg1"


def pr(n: int, sha: str = "a", **kw: object) -> PullRequest:
    return PullRequest(
        number=n, sha=(sha * 40)[:40], branch=f"feature-{n}", base="main", author="dev", title=f"PR {n}", **kw
    )  # type: ignore[arg-type]


def stack(n: int, sha: str = "a", config_hash: str = HASH, result: str = "succeeded") -> StackState:
    return StackState(pr=n, stack=f"pr-{n}", sha=(sha * 40)[:40], config_hash=config_hash, result=result)


def desired(n: int, sha: str = "a", ready: bool = True) -> DesiredEnvironment:
    return DesiredEnvironment(pr=pr(n, sha), config_hash=HASH, image_ready=ready)


def reconciler(
    source: FakeSource,
    gateway: FakeGateway,
    *,
    clock: Callable[[], float] = lambda: 1000.0,
    image_gate: ImageGate | None = None,
    **settings: object,
) -> Reconciler:
    return Reconciler(
        source=source,
        filters=compile_filters(FilterSettings()),
        gateway=gateway,
        config_hash=lambda _pr: HASH,
        settings=ReconcileSettings(**settings),  # type: ignore[arg-type]
        clock=clock,
        image_gate=image_gate,
    )


@pytest.mark.parametrize(
    ("wanted", "actual", "expected"),
    [
        ([desired(1)], [], {"create": [1]}),
        ([desired(1, "b")], [stack(1, "a")], {"update": [1]}),
        ([desired(1)], [stack(1, config_hash="old")], {"update": [1]}),
        ([desired(1)], [stack(1, result="failed")], {"update": [1]}),
        ([desired(1)], [stack(1)], {"unchanged": [1]}),
        ([], [stack(1)], {"destroy": [1]}),
        ([desired(1, ready=False)], [], {}),
        ([desired(2), desired(3)], [stack(1), stack(2)], {"create": [3], "destroy": [1], "unchanged": [2]}),
    ],
    ids=[
        "new-pr-is-created",
        "new-sha-updates",
        "changed-config-updates",
        "failed-deploy-is-retried",
        "unchanged-pr-is-left-alone",
        "closed-pr-is-destroyed",
        "pr-waiting-for-its-image-gets-nothing-yet",
        "mixed",
    ],
)
def test_plan(wanted: list[DesiredEnvironment], actual: list[StackState], expected: dict[str, list[int]]) -> None:
    plan = make_plan(wanted, actual, max_teardowns=10)
    assert plan.as_dict() == {k: expected.get(k, []) for k in ("create", "update", "destroy", "unchanged")}


def test_a_failed_source_means_no_desired_state_and_nothing_is_destroyed() -> None:
    plan = make_plan(None, [stack(1), stack(2)], max_teardowns=10)
    assert plan.of(ActionKind.DESTROY) == []
    assert plan.of(ActionKind.UNCHANGED) == [1, 2]


def test_teardowns_per_cycle_are_capped() -> None:
    plan = make_plan([], [stack(n) for n in range(1, 11)], max_teardowns=3)
    assert plan.of(ActionKind.DESTROY) == [1, 2, 3]
    assert plan.of(ActionKind.UNCHANGED) == list(range(4, 11))


def test_unchanged_prs_cost_no_operation() -> None:
    gateway = FakeGateway(stacks={n: stack(n) for n in (1, 2, 3)})
    result = reconciler(FakeSource([pr(1), pr(2), pr(3)]), gateway).sync()
    assert result.outcomes == ()
    assert [c for c in gateway.calls if c[0] != "list"] == []


def test_open_prs_are_created_changed_ones_updated_and_closed_ones_destroyed() -> None:
    gateway = FakeGateway(stacks={1: stack(1), 2: stack(2), 4: stack(4)})
    source = FakeSource([pr(1), pr(2, "b"), pr(3)])
    result = reconciler(source, gateway).sync()
    assert sorted(c for c in gateway.calls if c[0] != "list") == [("destroy", 4), ("up", 2), ("up", 3)]
    assert all(o.ok for o in result.outcomes)
    assert set(gateway.stacks) == {1, 2, 3}
    assert reconciler(source, gateway).sync().outcomes == ()


def test_source_outage_destroys_nothing_for_many_cycles() -> None:
    gateway = FakeGateway(stacks={n: stack(n) for n in (1, 2)})
    source = FakeSource([])
    source.fail_always(SourceUnavailable("GitHub is down"))
    r = reconciler(source, gateway)
    for _ in range(20):
        result = r.sync()
        assert not result.source_ok
    assert set(gateway.stacks) == {1, 2}
    assert [c for c in gateway.calls if c[0] == "destroy"] == []


def test_parallelism_is_bounded() -> None:
    gateway = FakeGateway(delay=0.05)
    reconciler(FakeSource([pr(n) for n in range(1, 9)]), gateway, parallelism=2).sync()
    assert gateway.max_concurrent == 2
    assert len(gateway.stacks) == 8


def test_never_two_operations_on_one_stack_at_once() -> None:
    gateway = FakeGateway(delay=0.1)
    r = reconciler(FakeSource([pr(1)]), gateway, parallelism=4)
    threads = [threading.Thread(target=r.sync) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gateway.overlaps == []
    assert gateway.max_concurrent == 1


def test_temporary_errors_back_off_and_are_retried() -> None:
    now = [1000.0]
    gateway = FakeGateway(fail={("up", 1): StackLocked("pr-1")})
    r = reconciler(FakeSource([pr(1)]), gateway, clock=lambda: now[0], backoff_base_seconds=10)
    first = r.sync().outcomes[0]
    assert (first.ok, first.temporary) == (False, True)
    assert r.sync().outcomes[0].skipped is SkipReason.BACKING_OFF
    gateway.fail.clear()
    now[0] += 11
    assert r.sync().outcomes[0].ok
    assert 1 in gateway.stacks


def test_backoff_grows_exponentially_up_to_the_maximum() -> None:
    now = [0.0]
    gateway = FakeGateway(fail={("up", 1): StackLocked("pr-1")})
    r = reconciler(FakeSource([pr(1)]), gateway, clock=lambda: now[0], backoff_base_seconds=10, backoff_max_seconds=35)
    waits = []
    for _ in range(4):
        r.sync()
        state = r.retry_state(1)
        assert state is not None
        waits.append(state.not_before - now[0])
        now[0] = state.not_before
    assert waits == [10, 20, 35, 35]
    assert r.retry_state(1) == RetryState(failures=4, not_before=now[0], reported=False)


def test_permanent_errors_are_reported_once_until_the_pr_changes() -> None:
    gateway = FakeGateway(fail={("up", 1): StackOperationError("pr-1", "image pull policy invalid")})
    source = FakeSource([pr(1)])
    r = reconciler(source, gateway)
    assert r.sync().outcomes[0].error == "pr-1: image pull policy invalid"
    assert r.sync().outcomes[0].skipped is SkipReason.ALREADY_REPORTED
    assert [c for c in gateway.calls if c[0] == "up"] == [("up", 1)]
    gateway.fail.clear()
    source.upsert(pr(1, "c"))
    assert r.sync().outcomes[0].ok


def test_the_retry_state_of_a_pr_is_public_and_forgotten_on_success() -> None:
    gateway = FakeGateway(fail={("up", 1): StackOperationError("pr-1", "bad")})
    r = reconciler(FakeSource([pr(1)]), gateway)
    assert r.retry_state(1) is None
    r.sync()
    assert r.retry_state(1) == RetryState(failures=0, not_before=0.0, reported=True)
    gateway.fail.clear()
    r.forget_failures()
    assert r.retry_state(1) is None
    assert r.sync().outcomes[0].ok
    assert r.retry_state(1) is None


def test_forgetting_failures_lets_the_next_pass_attempt_a_pr_in_backoff_at_once() -> None:
    gateway = FakeGateway(fail={("up", 1): StackLocked("pr-1")})
    r = reconciler(FakeSource([pr(1)]), gateway, backoff_base_seconds=300)
    r.sync()
    assert r.sync().outcomes[0].skipped is SkipReason.BACKING_OFF
    gateway.fail.clear()
    r.forget_failures()
    assert r.sync().outcomes[0].ok


def test_a_reconciler_s_collaborators_cannot_be_replaced_after_construction() -> None:
    r = reconciler(FakeSource([]), FakeGateway())
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.gateway = FakeGateway()  # type: ignore[misc]


def test_a_failed_destroy_keeps_the_stack_for_the_next_cycle() -> None:
    gateway = FakeGateway(stacks={1: stack(1)}, fail={("destroy", 1): StackLocked("pr-1")})
    r = reconciler(FakeSource([]), gateway, backoff_base_seconds=0)
    assert not r.sync().outcomes[0].ok
    assert 1 in gateway.stacks
    gateway.fail.clear()
    assert r.sync().outcomes[0].ok
    assert 1 not in gateway.stacks


def test_a_permanent_destroy_failure_is_reported_once_and_retried_only_at_the_backoff_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    gateway = FakeGateway(stacks={1: stack(1)}, fail={("destroy", 1): StackOperationError("pr-1", "destroy failed: x")})
    r = reconciler(FakeSource([]), gateway, clock=lambda: now[0], backoff_base_seconds=5, backoff_max_seconds=300)
    with caplog.at_level("WARNING", logger="prenv.reconcile"):
        first = r.sync().outcomes[0]
        assert (first.ok, first.temporary, first.error) == (False, False, "pr-1: destroy failed: x")
        assert r.retry_state(1) == RetryState(failures=1, not_before=1300.0, reported=True)
        now[0] += 299
        assert r.sync().outcomes[0].skipped is SkipReason.BACKING_OFF
        now[0] += 1
        again = r.sync().outcomes[0]
        assert (again.ok, again.skipped, again.temporary) == (False, None, False)
        assert r.retry_state(1) == RetryState(failures=2, not_before=1600.0, reported=True)
    assert [c for c in gateway.calls if c[0] == "destroy"] == [("destroy", 1), ("destroy", 1)]
    assert [rec.levelname for rec in caplog.records if "destroy failed for good" in rec.getMessage()] == [
        "ERROR",
        "WARNING",
    ]
    gateway.fail.clear()
    now[0] += 300
    assert r.sync().outcomes[0].ok
    assert 1 not in gateway.stacks
    assert r.retry_state(1) is None


def test_one_pr_can_be_reconciled_alone() -> None:
    gateway = FakeGateway(stacks={2: stack(2)})
    result = reconciler(FakeSource([pr(1), pr(3)]), gateway).sync(only=1)
    assert [o.action.pr for o in result.outcomes] == [1]
    assert 2 in gateway.stacks


def test_dry_run_plans_without_acting() -> None:
    gateway = FakeGateway(stacks={2: stack(2)})
    result = reconciler(FakeSource([pr(1)]), gateway).sync(dry_run=True)
    assert result.plan.as_dict() == {"create": [1], "update": [], "destroy": [2], "unchanged": []}
    assert [c for c in gateway.calls if c[0] != "list"] == []


def test_drafts_and_forks_get_no_environment_by_default() -> None:
    gateway = FakeGateway()
    reconciler(FakeSource([pr(1, draft=True), pr(2, fork=True), pr(3)]), gateway).sync()
    assert set(gateway.stacks) == {3}


def test_prs_whose_image_is_missing_wait() -> None:
    class Gate:
        def is_ready(self, tag: str) -> bool:
            return tag == "pr-2"

    gateway = FakeGateway()
    r = reconciler(FakeSource([pr(1), pr(2)]), gateway, image_gate=Gate())
    result = r.sync()
    assert [a.pr for a in result.plan.actions if a.kind is ActionKind.WAIT] == [1]
    assert set(gateway.stacks) == {2}


def test_a_pr_missing_from_one_listing_only_is_not_destroyed() -> None:
    class Flaky(FakeSource):
        def list_open(self) -> list[PullRequest]:
            prs = super().list_open()
            return [p for p in prs if p.number != 2] if self.calls == 1 else prs

    gateway = FakeGateway(stacks={1: stack(1), 2: stack(2)})
    result = reconciler(Flaky([pr(1), pr(2)]), gateway).sync()
    assert result.plan.of(ActionKind.DESTROY) == []
    assert set(gateway.stacks) == {1, 2}


def test_a_source_failing_on_the_confirming_listing_destroys_nothing() -> None:
    class FailsSecondTime(FakeSource):
        def list_open(self) -> list[PullRequest]:
            prs = super().list_open()
            if self.calls == 2:
                raise SourceUnavailable("timeout")
            return prs

    gateway = FakeGateway(stacks={1: stack(1), 2: stack(2)})
    result = reconciler(FailsSecondTime([pr(1)]), gateway).sync()
    assert result.plan.of(ActionKind.DESTROY) == []
    assert not result.source_ok
    assert set(gateway.stacks) == {1, 2}


def test_an_action_on_a_stack_whose_operation_is_running_is_skipped_as_busy() -> None:
    inner: list[SkipReason | None] = []
    gateway = FakeGateway()
    r = reconciler(FakeSource([pr(1)]), gateway)
    gateway.on_call = lambda _kind, n: inner.extend(o.skipped for o in r.sync(only=n).outcomes)
    assert r.sync().outcomes[0].ok
    assert inner == [SkipReason.BUSY]
    assert str(SkipReason.BUSY) == "another operation on this stack is running"
