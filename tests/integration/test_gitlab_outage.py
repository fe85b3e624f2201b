"""A GitLab outage destroys nothing: the reconciler over the real GitLab source and the fake GitLab, with every kind
of failure GitLab can show, cycle after cycle; environments are all still there when it comes back.

Stand-in: FakeGateway (stacks in memory, no pulumi run); the source and the HTTP are real.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.reconcile import Reconciler, ReconcileSettings
from prenv.sources import GitLabSource
from tests.fixtures.gitlab import TOKEN
from testsupport.gitlab_server import FakeGitLab

PROJECT = "platform/shop"
MRS = r"/merge_requests"

OUTAGES: dict[str, Callable[[FakeGitLab], object]] = {
    "refused": lambda fake: fake.stop(),
    "500": lambda fake: fake.fail(MRS, 500),
    "502": lambda fake: fake.fail(MRS, 502),
    "503": lambda fake: fake.fail(MRS, 503),
    "429": lambda fake: fake.rate_limit(MRS, retry_after=30),
    "timeout": lambda fake: fake.slow(MRS, 10),
    "html error page": lambda fake: fake.fail(MRS, 200, raw=b"<html>502 Bad Gateway</html>"),
    "second page fails": lambda fake: fake.fail(r"merge_requests\?.*\bpage=2\b", 503),
    "401 (token revoked)": lambda fake: fake.fail(MRS, 401),
    "404 (project hidden)": lambda fake: fake.fail(MRS, 404),
}


@pytest.mark.parametrize("outage", list(OUTAGES), ids=list(OUTAGES))
def test_an_outage_of_gitlab_destroys_nothing_and_recovery_changes_nothing(
    fake_gitlab: FakeGitLab, outage: str
) -> None:
    for iid in (1, 2, 3):
        fake_gitlab.add_merge_request(PROJECT, iid, labels=["preview"])
    source = GitLabSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url, per_page=2, timeout=1, retries=1)
    gateway = FakeGateway()
    reconciler = Reconciler(
        source=source,
        filters=compile_filters(FilterSettings(labels=("preview",))),
        gateway=gateway,
        config_hash=lambda _pr: "cfg",
        settings=ReconcileSettings(parallelism=2, max_teardowns_per_cycle=5),
    )
    reconciler.sync()
    deployed = {pr: state.sha for pr, state in gateway.stacks.items()}
    assert set(deployed) == {1, 2, 3}

    OUTAGES[outage](fake_gitlab)
    for _cycle in range(3):
        result = reconciler.sync()
        assert not result.source_ok
        assert result.plan.as_dict() == {"create": [], "update": [], "destroy": [], "unchanged": [1, 2, 3]}
    assert {pr: state.sha for pr, state in gateway.stacks.items()} == deployed

    fake_gitlab.clear_failures()
    if fake_gitlab._server is None:
        fake_gitlab.start()
    result = reconciler.sync()
    assert result.source_ok
    assert result.plan.as_dict() == {"create": [], "update": [], "destroy": [], "unchanged": [1, 2, 3]}
    assert {pr: state.sha for pr, state in gateway.stacks.items()} == deployed
    source.close()
