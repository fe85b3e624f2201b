"""One cap on pulumi operations for the whole process: ``reconcile.parallelism`` holds across the webhook workers'
one-PR passes, the full resync and drift checks together.

Stand-ins: FakeGateway (counts operations in flight) and FakeSource. Not end-to-end.
"""

from __future__ import annotations

import threading

from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.reconcile import Reconciler, ReconcileSettings
from prenv.sources.fake import FakeSource
from testsupport.service_harness import pull


def reconciler(gateway: FakeGateway, source: FakeSource, parallelism: int) -> Reconciler:
    return Reconciler(
        source=source,
        filters=compile_filters(FilterSettings()),
        gateway=gateway,
        config_hash=lambda _pr: "cfg",
        settings=ReconcileSettings(parallelism=parallelism),
    )


def test_one_pr_passes_and_a_full_pass_running_together_never_exceed_the_parallelism() -> None:
    gateway = FakeGateway(delay=0.05)
    source = FakeSource([pull(n) for n in range(1, 9)])
    r = reconciler(gateway, source, parallelism=2)
    passes = [threading.Thread(target=r.sync, kwargs={"only": n}) for n in range(1, 7)]
    passes.append(threading.Thread(target=r.sync))
    for t in passes:
        t.start()
    for t in passes:
        t.join(30)
    assert sorted(gateway.stacks) == list(range(1, 9))
    assert gateway.max_concurrent == 2
    assert gateway.overlaps == [], "never two operations on one stack"


def test_with_a_parallelism_of_one_everything_runs_one_at_a_time() -> None:
    gateway = FakeGateway(delay=0.02)
    source = FakeSource([pull(n) for n in range(1, 5)])
    r = reconciler(gateway, source, parallelism=1)
    passes = [threading.Thread(target=r.sync, kwargs={"only": n}) for n in range(1, 5)]
    for t in passes:
        t.start()
    for t in passes:
        t.join(30)
    assert sorted(gateway.stacks) == [1, 2, 3, 4] and gateway.max_concurrent == 1
