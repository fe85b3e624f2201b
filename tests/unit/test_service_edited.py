"""``pull_request`` ``edited`` (a new title or base branch) reconciles the PR at once, and the teardown says why.

Stand-ins: FakeGateway (stacks in memory) and FakeSource (PRs in memory) behind the real service, queue and app.
"""

from __future__ import annotations

import dataclasses

from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.reconcile import Reconciler, ReconcileSettings
from prenv.service.app import create_app
from prenv.service.feedback import Phase, Report
from prenv.service.service import Service, ServiceOptions, Wiring
from prenv.sources.fake import FakeSource
from testsupport.service_harness import REPOSITORY, SECRET, TestClient, encode, for_pr, headers, pull, wait_for


class Told:
    def __init__(self) -> None:
        self.reports: list[Report] = []

    def report(self, report: Report) -> None:
        self.reports.append(report)


def test_a_title_edit_that_flips_a_filter_tears_the_environment_down_at_once_and_says_why() -> None:
    source = FakeSource([pull(2)])
    gateway = FakeGateway()
    wiring = Wiring.around(gateway, source)
    reconciler = Reconciler(
        source=wiring.source,
        filters=compile_filters(FilterSettings(title_exclude="^WIP")),
        gateway=wiring.gateway,
        config_hash=lambda _pr: "cfg",
        settings=ReconcileSettings(parallelism=2),
        on_outcome=wiring.outcomes,
    )
    told = Told()
    options = ServiceOptions(repository=REPOSITORY, resync_seconds=3600.0, retry_delay_seconds=0.05)
    service = Service(reconciler, wiring, secret=SECRET, options=options, feedback=told)
    reconciler.sync()
    assert [s.pr for s in gateway.list_stacks()] == [2]

    with TestClient(create_app(service)) as client:
        wait_for(lambda: service.ready, what="the start-up resync")  # it finds the PR unchanged
        source.set([dataclasses.replace(pull(2), title="WIP: not ready after all")])
        event = for_pr("opened", 2)
        event["action"] = "edited"
        event["changes"] = {"title": {"from": "PR 2"}}
        body = encode(event)
        response = client.post("/webhooks/github", content=body, headers=headers(body))
        assert response.json() == {"result": "queued", "pr": 2}
        wait_for(lambda: gateway.list_stacks() == [], what="the teardown")
        wait_for(lambda: any(r.phase is Phase.TORN_DOWN for r in told.reports), what="the PR told")
    [gone] = [r for r in told.reports if r.phase is Phase.TORN_DOWN]
    assert gone.reason == "the PR's title or target branch changed"
