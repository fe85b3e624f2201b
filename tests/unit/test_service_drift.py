"""The background drift check of `prenv serve`: one due environment per pass, drift told to the PR and measured,
healed with ``self_heal``, never overlapping an operation, only on the leader.

Stand-ins: FakeGateway (stacks in memory, drift set by the test) and FakeSource (PRs in memory). Not end-to-end:
tests/e2e/test_drift.py finds and heals real drift with the real engine.
"""

from __future__ import annotations

import threading
from typing import Any

from prenv.gateway.fake import FakeGateway
from prenv.model import DesiredEnvironment
from prenv.service.feedback import Phase, Report, render_comment
from prenv.service.leadership import Leadership
from prenv.service.service import Service
from prenv.sources.fake import FakeSource
from testsupport.service_harness import make_service, pull


class Told:
    def __init__(self) -> None:
        self.reports: list[Report] = []

    def report(self, report: Report) -> None:
        self.reports.append(report)


def deployed(*numbers: int, **options: Any) -> tuple[Service, FakeGateway, Told]:
    gateway, told = FakeGateway(), Told()
    service = make_service(
        FakeSource([pull(n) for n in numbers]), gateway, feedback=told, drift_check_seconds=3600.0, **options
    )
    service.reconciler.sync()
    return service, gateway, told


def test_drift_found_is_told_to_the_pr_and_measured_and_the_next_pass_checks_another_environment() -> None:
    service, gateway, told = deployed(1, 2)
    gateway.drifted[1] = {"create": 1, "update": 2}
    first = service.check_drift_once()
    second = service.check_drift_once()
    assert [(d.pr, d.changes) for d in first + second] == [(1, {"create": 1, "update": 2}), (2, {})]
    assert service.check_drift_once() == [], "both checked less than drift_check_seconds ago"
    (report,) = [r for r in told.reports if r.drift is not None]
    assert (report.pr, report.phase, report.drift) == (1, Phase.READY, "1 to create, 2 to update")
    comment = render_comment(report, None, "https://web-1.preview.test")
    assert "**Drift:**" in comment and "1 to create, 2 to update" in comment
    metrics = service.metrics.render().decode()
    assert 'prenv_environment_drifted_resources{pr="1"} 3.0' in metrics
    assert 'prenv_environment_drifted_resources{pr="2"} 0.0' in metrics
    assert 'prenv_drift_checks_total{result="drifted"} 1.0' in metrics


def test_with_self_heal_drift_is_put_back_and_counted_as_healed() -> None:
    service, gateway, _told = deployed(1, self_heal=True)
    gateway.drifted[1] = {"create": 1}
    (found,) = service.check_drift_once()
    assert found.healed and gateway.drifted == {}
    metrics = service.metrics.render().decode()
    assert 'prenv_environment_drifted_resources{pr="1"} 0.0' in metrics
    assert 'prenv_drift_checks_total{result="healed"} 1.0' in metrics


def test_an_environment_with_a_new_commit_is_updated_not_checked_for_drift() -> None:
    service, gateway, _told = deployed(1)
    source = service.reconciler.source
    assert isinstance(source, FakeSource)
    source.upsert(pull(1, sha="b"))
    assert service.check_drift_once() == []
    assert ("drift", 1) not in gateway.calls


def test_no_drift_check_runs_while_an_operation_of_the_pr_does() -> None:
    started, release = threading.Event(), threading.Event()

    def hold(kind: str, pr: int) -> None:
        if kind == "up":
            started.set()
            release.wait(10)

    gateway = FakeGateway()
    service = make_service(FakeSource([pull(1)]), gateway, drift_check_seconds=1.0)
    gateway.up(DesiredEnvironment(pr=pull(1), config_hash="cfg"))
    gateway.on_call = hold
    updating = threading.Thread(target=gateway.up, args=(DesiredEnvironment(pr=pull(1), config_hash="cfg"),))
    service.gateway._active.add(1)  # as ObservedGateway does for an operation in flight
    updating.start()
    try:
        started.wait(10)
        assert service.check_drift_once() == []
        assert ("drift", 1) not in gateway.calls
    finally:
        release.set()
        updating.join(10)
        service.gateway._active.discard(1)


def test_a_follower_checks_nothing() -> None:
    leadership = Leadership(is_leader=lambda: False, leader_url=lambda: None, release=lambda: None)
    gateway = FakeGateway()
    service = make_service(FakeSource([pull(1)]), gateway, drift_check_seconds=1.0, leadership=leadership)
    gateway.up(DesiredEnvironment(pr=pull(1), config_hash="cfg"))
    gateway.drifted[1] = {"create": 1}
    assert service.check_drift_once() == []
    assert ("drift", 1) not in gateway.calls
