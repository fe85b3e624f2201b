"""The service's composition: wrappers and hooks built first, the reconciler built with them, nothing patched later.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from prenv import settings
from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.reconcile import Outcome, Reconciler
from prenv.service.hooks import Hook
from prenv.service.observe import ObservedGateway
from prenv.service.runner import build_service
from prenv.service.service import Service, Wiring
from prenv.service.ttl import TtlPolicy, TtlSource
from prenv.sleep import SleepSource
from prenv.sources.fake import FakeSource
from testsupport.service_harness import SECRET, pull


def reconciler_over(wiring: Wiring) -> Reconciler:
    return Reconciler(
        source=wiring.source,
        filters=compile_filters(FilterSettings()),
        gateway=wiring.gateway,
        config_hash=lambda _pr: "cfg",
        on_outcome=wiring.outcomes,
    )


def test_the_service_does_not_replace_the_collaborators_the_reconciler_was_built_with() -> None:
    gateway, source = FakeGateway(), FakeSource([pull(2)])
    wiring = Wiring.around(gateway, source, TtlPolicy())
    reconciler = reconciler_over(wiring)
    before = (reconciler.gateway, reconciler.source, reconciler.on_outcome)
    service = Service(reconciler, wiring, secret=SECRET)
    assert (reconciler.gateway, reconciler.source, reconciler.on_outcome) == before
    assert isinstance(reconciler.gateway, ObservedGateway) and reconciler.gateway.inner is gateway
    assert isinstance(reconciler.source, TtlSource) and reconciler.source.inner is source
    assert service.gateway is reconciler.gateway and service.ttl is reconciler.source


def test_without_a_ttl_policy_the_reconciler_reads_the_real_source() -> None:
    source = FakeSource([])
    wiring = Wiring.around(FakeGateway(), source)
    assert wiring.source is source and wiring.ttl is None


def test_the_service_hears_the_reconciler_s_outcomes_through_the_hook() -> None:
    wiring = Wiring.around(FakeGateway(), FakeSource([pull(2)]))
    heard: list[Outcome] = []
    wiring.outcomes.subscribe(heard.append)
    service = Service(reconciler_over(wiring), wiring, secret=SECRET)
    service.reconciler.sync()
    assert [o.action.pr for o in heard] == [2]
    assert service.metrics.operations.labels("create", "ok")._value.get() == 1  # type: ignore[attr-defined]


def test_a_reconciler_built_around_something_else_is_refused() -> None:
    wiring = Wiring.around(FakeGateway(), FakeSource([]))
    stray = Reconciler(
        source=wiring.source,
        filters=compile_filters(FilterSettings()),
        gateway=FakeGateway(),
        config_hash=lambda _pr: "cfg",
        on_outcome=wiring.outcomes,
    )
    with pytest.raises(ValueError, match="wiring"):
        Service(stray, wiring, secret=SECRET)


def test_a_failing_listener_is_logged_and_the_next_one_still_hears(caplog: pytest.LogCaptureFixture) -> None:
    hook: Hook[[int]] = Hook("number")
    heard: list[int] = []

    def broken(_n: int) -> None:
        raise RuntimeError("boom")

    hook.subscribe(broken)
    hook.subscribe(heard.append)
    with caplog.at_level(logging.ERROR):
        hook(7)
    assert heard == [7]
    assert "number listener failed" in caplog.text


def test_the_composition_root_builds_the_reconciler_over_the_service_s_wrappers(tmp_path: Path) -> None:
    project = Path(__file__).resolve().parents[2]  # this checkout's Pulumi project
    config = tmp_path / "prenv.yaml"
    config.write_text(f"project_dir: {project}\nstate:\n  backend: file://{tmp_path / 'state'}\n")
    s = settings.load(config, {settings.WEBHOOK_SECRET_ENV: "x", "PRENV_SERVE__TTL__DEFAULT_HOURS": "24"})
    source = FakeSource([])
    service = build_service(s, source=source)
    gateway, ttl = service.reconciler.gateway, service.reconciler.source
    assert isinstance(gateway, ObservedGateway) and service.gateway is gateway
    assert isinstance(ttl, TtlSource) and service.ttl is ttl
    sleep = ttl.inner
    assert isinstance(sleep, SleepSource) and sleep.inner is source and service.sleep is sleep
    assert ttl.policy.default == timedelta(hours=24)
    assert service.role == "standalone"


def test_a_permanent_destroy_failure_reaches_the_pr_comment_and_the_metrics_and_is_retried_at_the_cap() -> None:
    """With FakeGateway (no pulumi): the service's side of a destroy that pulumi refused for good."""
    from prenv.errors import StackOperationError
    from prenv.model import StackState
    from prenv.service.feedback import Phase, Report
    from testsupport.service_harness import make_service

    class Heard:
        def __init__(self) -> None:
            self.reports: list[Report] = []

        def report(self, report: Report) -> None:
            self.reports.append(report)

    failure = StackOperationError("pr-9", "destroy failed: database pr_9 is in use")
    gateway = FakeGateway(stacks={9: StackState(9, "pr-9", "a" * 40, "cfg")}, fail={("destroy", 9): failure})
    heard = Heard()
    service = make_service(FakeSource([]), gateway, feedback=heard)
    outcome = service.reconciler.sync().outcomes[0]
    assert (outcome.ok, outcome.temporary) == (False, False)
    assert [(r.pr, r.phase, r.error) for r in heard.reports] == [
        (9, Phase.TEARDOWN_FAILED, "pr-9: destroy failed: database pr_9 is in use")
    ]
    assert service.metrics.failures.labels("destroy", "permanent")._value.get() == 1  # type: ignore[attr-defined]
    assert service.reconciler.sync().outcomes[0].skipped is not None  # backing off, not hammering
    state = service.reconciler.retry_state(9)
    assert state is not None and state.reported and state.not_before > 0
