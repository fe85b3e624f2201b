"""Background feedback: operations never wait for GitHub, and reports still arrive in order and before exit.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from prenv.service.dispatch import BackgroundFeedback
from prenv.service.feedback import Phase, Report
from testsupport.service_harness import make_service, wait_for


class SlowFeedback:
    """Records reports; each one blocks until ``gate`` is set (GitHub being slow)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.told: list[tuple[int, Phase]] = []

    def report(self, report: Report) -> None:
        self.gate.wait(10)
        if report.pr == 13:
            raise RuntimeError("unlucky report")
        self.told.append((report.pr, report.phase))


def report(pr: int, phase: Phase = Phase.DEPLOYING) -> Report:
    return Report(pr, phase, datetime.now(UTC))


def test_report_returns_at_once_while_github_is_slow() -> None:
    inner = SlowFeedback()
    feedback = BackgroundFeedback(inner)
    done = threading.Event()

    def tell() -> None:
        feedback.report(report(1))
        done.set()

    threading.Thread(target=tell).start()
    assert done.wait(1), "report() waited for GitHub"
    assert inner.told == []
    inner.gate.set()
    assert feedback.flush(5)
    assert inner.told == [(1, Phase.DEPLOYING)]


def test_reports_reach_github_in_the_order_they_happened_and_a_failing_one_stops_nothing() -> None:
    inner = SlowFeedback()
    feedback = BackgroundFeedback(inner)
    for pr, phase in [(1, Phase.DEPLOYING), (13, Phase.DEPLOYING), (1, Phase.READY), (2, Phase.TORN_DOWN)]:
        feedback.report(report(pr, phase))
    inner.gate.set()
    assert feedback.flush(5)
    assert inner.told == [(1, Phase.DEPLOYING), (1, Phase.READY), (2, Phase.TORN_DOWN)]
    assert feedback.pending() == 0


def test_flush_gives_up_after_its_timeout_when_github_hangs() -> None:
    inner = SlowFeedback()
    feedback = BackgroundFeedback(inner)
    feedback.report(report(1))
    assert not feedback.flush(0.2)
    assert feedback.pending() == 1
    inner.gate.set()
    assert feedback.close(5)


def test_a_full_queue_drops_the_oldest_report_and_counts_it() -> None:
    inner = SlowFeedback()
    feedback = BackgroundFeedback(inner, max_pending=2)
    feedback.report(report(1))  # taken by the thread, blocked on the gate
    wait_for(lambda: feedback.pending() == 1 and not feedback._pending, what="first report taken")
    for pr in (2, 3, 4):
        feedback.report(report(pr))
    assert feedback.dropped == 1
    inner.gate.set()
    assert feedback.flush(5)
    assert [pr for pr, _ in inner.told] == [1, 3, 4]


def test_reports_after_close_are_refused_not_lost_silently(caplog) -> None:  # type: ignore[no-untyped-def]
    inner = SlowFeedback()
    inner.gate.set()
    feedback = BackgroundFeedback(inner)
    assert feedback.close(5)
    feedback.report(report(5, Phase.READY))
    assert inner.told == []
    assert "feedback closed" in caplog.text


def test_a_draining_service_posts_the_queued_reports_before_it_reports_drained() -> None:
    inner = SlowFeedback()
    feedback = BackgroundFeedback(inner)
    service = make_service(feedback=feedback)
    feedback.report(report(2, Phase.READY))
    threading.Timer(0.3, inner.gate.set).start()

    async def drain() -> bool:
        return await service.drain(grace=5)

    assert asyncio.run(drain())
    assert inner.told == [(2, Phase.READY)]
