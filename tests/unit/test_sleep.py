"""Sleep rules: which environments sleep, what wakes them, and how sleeping reaches the stack and the reconciler.

Stand-ins: FakeSource (PRs in memory) and stack records built by hand; the reconciler's plan is computed without a
gateway. The e2e with the real engine is tests/e2e/test_sleep_wake.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prenv import stackconfig
from prenv.errors import SourceUnavailable, StackOperationError
from prenv.model import ActionKind, DesiredEnvironment, PullRequest, StackState
from prenv.reconcile import make_plan
from prenv.sleep import Request, SleepPolicy, SleepSource, decide
from prenv.sources.fake import FakeSource

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
HOUR = SleepPolicy(after=H)


def pr(sha: str = "a", labels: tuple[str, ...] = (), n: int = 7) -> PullRequest:
    return PullRequest(number=n, sha=sha * 40, branch="b", base="main", author="u", title="t", labels=frozenset(labels))


def stack(deployed: datetime | None, *, asleep: bool = False, sha: str = "a", n: int = 7) -> StackState:
    return StackState(
        pr=n,
        stack=f"pr-{n}",
        sha=sha * 40,
        config_hash=stackconfig.sleep_hash("h", asleep),
        created_at=NOW - 10 * H,
        last_update=deployed,
        result="succeeded",
    )


@pytest.mark.parametrize(
    ("the_pr", "the_stack", "request_", "asleep"),
    [
        (pr(), None, None, False),
        (pr(), stack(NOW - 2 * H), None, True),
        (pr(), stack(NOW - H / 2), None, False),
        (pr("b"), stack(NOW - 2 * H), None, False),
        (pr("b"), stack(NOW - 2 * H, asleep=True), None, False),
        (pr(), stack(NOW - H / 2, asleep=True), None, True),
        (pr(), stack(NOW - H / 2), Request.SLEEP, True),
        (pr(), stack(NOW - H / 2, asleep=True), Request.WAKE, False),
        (pr("b"), stack(NOW - H / 2), Request.SLEEP, False),
        (pr(labels=("preview/awake",)), stack(NOW - 2 * H), None, False),
        (pr(labels=("preview/awake",)), stack(NOW - H / 2), Request.SLEEP, False),
        (pr(labels=("preview/awake",)), stack(NOW - H / 2, asleep=True), None, False),
        (pr(), stack(None), None, True),  # created 10 h ago, never updated since
    ],
    ids=[
        "no-stack-starts-awake",
        "idle-longer-than-sleep-after",
        "recent-push",
        "pending-push-is-awake",
        "push-wakes-a-sleeping-one",
        "sleeping-stays-asleep",
        "sleep-command",
        "wake-command",
        "push-beats-sleep-command",
        "awake-label-keeps-it-awake",
        "awake-label-beats-sleep-command",
        "awake-label-wakes-a-sleeping-one",
        "created-long-ago",
    ],
)
def test_sleep_rule(the_pr: PullRequest, the_stack: StackState | None, request_: Request | None, asleep: bool) -> None:
    assert decide(the_pr, the_stack, NOW, HOUR, request_).asleep is asleep


def test_without_sleep_after_an_environment_only_sleeps_when_asked() -> None:
    verdict = decide(pr(), stack(NOW - 100 * H), NOW, SleepPolicy())
    assert not verdict.asleep and verdict.reason == "no prenv:sleepAfter"
    assert decide(pr(), stack(NOW - 100 * H), NOW, SleepPolicy(), Request.SLEEP).asleep


def test_an_awake_environment_says_when_it_will_sleep() -> None:
    assert decide(pr(), stack(NOW - H / 4), NOW, HOUR).sleeps_at == NOW + 3 * H / 4


def test_a_sleeping_environment_has_a_config_hash_of_its_own_so_sleep_and_wake_are_updates() -> None:
    assert stackconfig.sleep_hash("abc", False) == "abc"
    assert stackconfig.sleep_hash("abc", True) != "abc"
    assert stack(NOW, asleep=True).asleep and not stack(NOW).asleep


def plan_for(p: PullRequest, s: StackState) -> ActionKind:
    desired = [DesiredEnvironment(pr=p, config_hash=stackconfig.sleep_hash("h", p.asleep))]
    return make_plan(desired, [s], max_teardowns=5).actions[0].kind


def test_an_unchanged_sleeping_pr_costs_no_pulumi_run_and_waking_it_is_an_update() -> None:
    sleeping = stack(NOW - 2 * H, asleep=True)
    p = pr()
    assert plan_for(decided(p, sleeping), sleeping) is ActionKind.UNCHANGED
    assert plan_for(decided(p, sleeping, Request.WAKE), sleeping) is ActionKind.UPDATE
    awake = stack(NOW - 2 * H)
    assert plan_for(decided(p, awake), awake) is ActionKind.UPDATE, "idle for 2 h: put to sleep"


def decided(p: PullRequest, s: StackState, request: Request | None = None) -> PullRequest:
    source = SleepSource(FakeSource([p]), lambda: [s], HOUR, clock=lambda: NOW)
    if request is not None:
        source.request(p.number, request)
    return source.list_open()[0]


def test_the_sleep_source_marks_sleeping_prs_and_forgets_a_command_once_the_stack_shows_it() -> None:
    stacks = [stack(NOW - H / 2)]
    source = SleepSource(FakeSource([pr()]), lambda: stacks, HOUR, clock=lambda: NOW)
    assert [p.asleep for p in source.list_open()] == [False]
    source.request(7, Request.SLEEP)
    assert [p.asleep for p in source.list_open()] == [True]
    stacks[0] = stack(NOW, asleep=True)  # the up that put it to sleep
    assert [p.asleep for p in source.list_open()] == [True]
    source.request(7, Request.WAKE)
    assert [p.asleep for p in source.list_open()] == [False]
    stacks[0] = stack(NOW)  # the up that woke it
    assert [p.asleep for p in source.list_open()] == [False], "woken, its idle time counts from the wake"


def test_a_push_overtakes_a_sleep_command() -> None:
    stacks = [stack(NOW - H / 2)]
    prs = FakeSource([pr("b")])
    source = SleepSource(prs, lambda: stacks, HOUR, clock=lambda: NOW)
    source.request(7, Request.SLEEP)
    assert [p.asleep for p in source.list_open()] == [False]
    stacks[0] = stack(NOW, sha="b")
    assert [p.asleep for p in source.list_open()] == [False], "the command is forgotten, not carried out later"


def test_when_stacks_cannot_be_listed_the_sleep_source_decides_nothing() -> None:
    def broken() -> list[StackState]:
        raise StackOperationError("pr-7", "backend down", temporary=True)

    source = SleepSource(FakeSource([pr()]), broken, HOUR, clock=lambda: NOW)
    with pytest.raises(SourceUnavailable):
        source.list_open()


def test_a_sleeping_apps_deployments_and_statefulsets_get_zero_replicas_and_the_rest_stays() -> None:
    from components.workload import Guard

    guard = Guard(namespace="prenv-pr-7", sha="a" * 40, key="prenv:app.files", asleep=True)
    for kind in ("Deployment", "StatefulSet"):
        obj = {"kind": kind, "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {}}}
        assert guard.object(obj, normalized=False)["spec"]["replicas"] == 0
    daemons = guard.object({"kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {"template": {}}}, normalized=False)
    assert "replicas" not in daemons["spec"]
    service = {"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    assert guard.object(service, normalized=False)["spec"] == service["spec"]
    awake = Guard(namespace="prenv-pr-7", sha="a" * 40, key="prenv:app.files")
    obj = {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {}}}
    assert awake.object(obj, normalized=False)["spec"]["replicas"] == 3


def test_the_metrics_count_sleeping_environments() -> None:
    from prenv.service.metrics import ServiceMetrics

    m = ServiceMetrics(environments=lambda: [stack(NOW, asleep=True), stack(NOW, n=8), stack(NOW, asleep=True, n=9)])
    text = m.render().decode()
    assert "prenv_environments_asleep 2.0" in text
    assert 'prenv_environments{status="ready"} 3.0' in text, "a sleeping environment is still a ready one"


def test_the_ttl_wrapper_over_the_sleep_source_decides_on_the_same_stack_listing() -> None:
    from prenv.ttl import TtlPolicy, TtlSource

    listings: list[int] = []

    def stacks() -> list[StackState]:
        listings.append(1)
        return [stack(NOW - 2 * H)]

    sleep = SleepSource(FakeSource([pr()]), stacks, HOUR, clock=lambda: NOW)
    ttl = TtlSource(sleep, sleep.listed, TtlPolicy(), clock=lambda: NOW)
    assert [p.asleep for p in ttl.list_open()] == [True]
    assert len(listings) == 1, "one listing per pass, not one per wrapper"


def test_a_sleeping_prs_comment_says_how_to_wake_it_where_there_are_no_comment_commands() -> None:
    from prenv.service.feedback import Phase, Report, render_comment
    from prenv.service.service import WAKE_BY_PUSH

    body = render_comment(Report(7, Phase.ASLEEP, NOW, reason=WAKE_BY_PUSH), pr(), "http://web-7.preview.test")
    assert "💤 asleep — push or add the label `preview/awake` to wake it" in body
    assert "/preview wake" not in body
