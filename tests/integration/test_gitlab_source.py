"""GitLabSource and GitLabBranchSource through real python-gitlab against the fake GitLab: pages, fields, forks,
drafts, hostile input and every failure."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from prenv import naming
from prenv.errors import ConfigError, SourceError, SourceUnavailable
from prenv.sources import GitLabBranchSource, GitLabSource, PullRequestSource
from tests.fixtures.gitlab import TOKEN
from testsupport.gitlab_server import FakeGitLab

PROJECT = "platform/web/shop"
MRS = r"/projects/(platform/web/shop|\d+)/merge_requests"


def source(fake: FakeGitLab, *, per_page: int = 100, timeout: int = 5, retries: int = 0) -> GitLabSource:
    return GitLabSource(PROJECT, token=TOKEN, base_url=fake.url, per_page=per_page, timeout=timeout, retries=retries)


def test_a_gitlab_source_is_a_pull_request_source(fake_gitlab: FakeGitLab) -> None:
    assert isinstance(source(fake_gitlab), PullRequestSource)
    assert isinstance(GitLabBranchSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url), PullRequestSource)


def test_every_open_merge_request_is_listed_across_pages_with_one_request_per_page(fake_gitlab: FakeGitLab) -> None:
    for iid in range(1, 8):
        fake_gitlab.add_merge_request(PROJECT, iid)
    fake_gitlab.add_merge_request(PROJECT, 8)
    fake_gitlab.close_merge_request(PROJECT, 8)
    fake_gitlab.add_merge_request(PROJECT, 9)
    fake_gitlab.close_merge_request(PROJECT, 9, state="merged")

    prs = source(fake_gitlab, per_page=3).list_open()

    assert [p.number for p in prs] == [1, 2, 3, 4, 5, 6, 7]
    assert fake_gitlab.calls("GET", MRS) == 3
    assert fake_gitlab.calls() == 3  # the project itself is never fetched
    assert [r.query.get("page", ["1"])[0] for r in fake_gitlab.requests] == ["1", "2", "3"]
    assert all(r.query["state"] == ["opened"] for r in fake_gitlab.requests)
    assert all(r.headers["private-token"] == TOKEN for r in fake_gitlab.requests)


def test_merge_request_fields_come_from_the_listing_with_the_iid_as_number(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(
        PROJECT,
        5,
        sha="ABCDEF0123456789abcdef0123456789abcdef01",
        branch="feature/cart",
        target="develop",
        author="bob",
        title="Shopping cart",
        labels=["preview", "build::image-ready"],
        updated_at="2026-03-04T05:06:07.000Z",
    )

    [pr] = source(fake_gitlab).list_open()

    assert pr.number == 5  # the iid (!5), not the global id
    assert pr.sha == "abcdef0123456789abcdef0123456789abcdef01"
    assert (pr.branch, pr.base, pr.author, pr.title) == ("feature/cart", "develop", "bob", "Shopping cart")
    assert pr.labels == frozenset({"preview", "build::image-ready"})
    assert (pr.draft, pr.fork) == (False, False)
    assert pr.updated_at is not None and pr.updated_at.isoformat() == "2026-03-04T05:06:07+00:00"


def test_drafts_are_flagged_by_draft_or_the_older_work_in_progress(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.add_merge_request(PROJECT, 2, draft=True)
    fake_gitlab.add_merge_request(PROJECT, 3).update({"draft": None, "work_in_progress": True})

    prs = source(fake_gitlab).list_open()

    assert {p.number: p.draft for p in prs} == {1: False, 2: True, 3: True}


def test_forks_are_merge_requests_from_another_or_a_deleted_source_project(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.add_merge_request(PROJECT, 2, fork=True)
    fake_gitlab.add_merge_request(PROJECT, 3)["source_project_id"] = None

    prs = source(fake_gitlab).list_open()

    assert {p.number: p.fork for p in prs} == {1: False, 2: True, 3: True}


def test_labels_listed_with_details_are_read_by_name(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)["labels"] = [{"id": 1, "name": "preview", "color": "#fff"}]

    [pr] = source(fake_gitlab).list_open()

    assert pr.labels == frozenset({"preview"})


def test_hostile_and_malformed_entries_are_skipped_without_echo_or_extra_requests(
    fake_gitlab: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1, title="<script>alert(1)</script> $(rm -rf /); DROP TABLE x;--")
    fake_gitlab.add_merge_request(PROJECT, 2)["sha"] = None
    fake_gitlab.add_merge_request(PROJECT, 3, title="\x1b[31mred alert\x1b[0m")
    fake_gitlab.add_merge_request(PROJECT, 4, branch="x" * 2000)
    fake_gitlab.add_merge_request(PROJECT, 5)["iid"] = "five"
    fake_gitlab.add_merge_request(PROJECT, 6, branch="feature/\nforged log line")
    fake_gitlab.add_merge_request(PROJECT, 7, branch="'; DROP DATABASE prod; --", labels=["$(id)"])

    with caplog.at_level(logging.WARNING, logger="prenv.sources.records"):
        prs = source(fake_gitlab).list_open()

    assert [p.number for p in prs] == [1, 7]
    assert prs[0].title.startswith("<script>")  # kept as text; names are built from the number only
    assert naming.stack_name(prs[1].number) == "pr-7"
    assert fake_gitlab.calls() == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5
    assert any("PR #2: sha is missing" in m for m in messages)
    assert any("PR #3: title contains control characters" in m for m in messages)
    assert not any("red alert" in m or "x" * 100 in m or "forged" in m for m in messages)


def test_an_unknown_project_is_a_permanent_source_error(fake_gitlab: FakeGitLab) -> None:
    with pytest.raises(SourceError) as caught:
        GitLabSource("platform/absent", token=TOKEN, base_url=fake_gitlab.url).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "HTTP 404" in str(caught.value)


def test_a_wrong_token_is_a_permanent_source_error_that_never_shows_the_token(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)

    with pytest.raises(SourceError) as caught:
        GitLabSource(PROJECT, token="glpat-wrong-secret", base_url=fake_gitlab.url).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "bad credentials (HTTP 401)" in str(caught.value)
    assert "glpat" not in str(caught.value)


def test_a_ci_job_token_is_sent_as_job_token(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)

    prs = GitLabSource(PROJECT, job_token=TOKEN, base_url=fake_gitlab.url).list_open()

    assert [p.number for p in prs] == [1]
    [request] = fake_gitlab.requests
    assert request.headers["job-token"] == TOKEN
    assert "private-token" not in request.headers


def test_a_numeric_project_id_addresses_the_same_project(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    project_id = fake_gitlab.project(PROJECT).id

    prs = GitLabSource(str(project_id), token=TOKEN, base_url=fake_gitlab.url).list_open()

    assert [p.number for p in prs] == [1]


def test_a_rate_limit_is_temporary_with_the_retry_after_delay_and_is_not_slept_through(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.rate_limit(MRS, retry_after=42)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="rate limited") as caught:
        source(fake_gitlab, retries=3).list_open()

    assert caught.value.delay == 42
    assert time.monotonic() - started < 5
    assert fake_gitlab.calls("GET", MRS) == 1


def test_the_last_seen_rate_limit_is_exposed_for_metrics(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    gl = source(fake_gitlab)
    assert gl.rate_limit is None

    gl.list_open()

    assert gl.rate_limit is not None
    assert (gl.rate_limit.limit, gl.rate_limit.remaining) == (2000, 1999)
    assert gl.rate_limit.reset.timestamp() == fake_gitlab.rate_reset


def test_a_rate_limit_on_a_later_page_fails_the_whole_listing(fake_gitlab: FakeGitLab) -> None:
    for iid in range(1, 5):
        fake_gitlab.add_merge_request(PROJECT, iid)
    fake_gitlab.rate_limit(r"merge_requests\?.*\bpage=2\b")

    with pytest.raises(SourceUnavailable):
        source(fake_gitlab, per_page=2).list_open()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_temporary_after_bounded_retries(fake_gitlab: FakeGitLab, status: int) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    # GitLab sends RateLimit-Reset on its answers; python-gitlab's own retries would sleep until then (an hour here).
    fake_gitlab.fail(MRS, status, headers={"RateLimit-Reset": str(int(time.time()) + 3600)})

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=f"HTTP {status}"):
        source(fake_gitlab, retries=2).list_open()

    assert time.monotonic() - started < 5
    assert fake_gitlab.calls("GET", MRS) == 3


def test_a_transient_server_error_is_retried_and_the_listing_succeeds(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.fail(MRS, 502, times=1)

    assert [p.number for p in source(fake_gitlab, retries=2).list_open()] == [1]
    assert fake_gitlab.calls("GET", MRS) == 2


def test_a_proxy_error_page_instead_of_json_is_temporary(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.fail(MRS, 200, raw=b"<html><body>maintenance</body></html>")

    with pytest.raises(SourceUnavailable, match="not JSON"):
        source(fake_gitlab).list_open()


def test_a_slow_api_times_out_as_temporary_within_a_bounded_time(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    fake_gitlab.slow(MRS, 30)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        source(fake_gitlab, timeout=1, retries=1).list_open()

    assert time.monotonic() - started < 6
    assert fake_gitlab.calls("GET", MRS) == 2


def test_a_stopped_server_is_temporary_and_the_source_recovers_when_it_returns(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request(PROJECT, 1)
    gl = source(fake_gitlab)
    fake_gitlab.stop()

    with pytest.raises(SourceUnavailable, match="cannot reach"):
        gl.list_open()

    fake_gitlab.start()
    assert [p.number for p in gl.list_open()] == [1]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"project": "not a project"}, "source.gitlab.project"),
        ({"project": "group/../etc"}, "source.gitlab.project"),
        ({"project": PROJECT, "token": ""}, "source.gitlab.token"),
        ({"project": PROJECT, "per_page": 500}, "source.gitlab.per_page"),
        ({"project": PROJECT, "ca_bundle": Path("/nonexistent/ca.pem")}, "source.gitlab.ca_bundle"),
        ({"project": PROJECT, "base_url": "gitlab.example.com"}, "source.gitlab.base_url"),
        ({"project": PROJECT, "base_url": "https://gitlab.example.com/api/v4"}, "source.gitlab.base_url"),
    ],
    ids=[
        "malformed project",
        "path traversal",
        "empty token",
        "page too large",
        "missing CA bundle",
        "no scheme",
        "api",
    ],
)
def test_bad_configuration_fails_at_construction_naming_its_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GitLabSource(**kwargs)  # type: ignore[arg-type]

    assert caught.value.key == key


def test_a_ca_bundle_is_used_to_verify_the_instance(fake_gitlab: FakeGitLab, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")

    gl = GitLabSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url, ca_bundle=bundle)

    assert gl._gitlab.ssl_verify == str(bundle)


def test_the_token_never_appears_in_the_repr(fake_gitlab: FakeGitLab) -> None:
    assert TOKEN not in repr(source(fake_gitlab))


# --- branches ------------------------------------------------------------------------------------------------


def test_branches_are_listed_with_their_head_commit_and_a_number_and_slug_from_their_name(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.add_branch(PROJECT, "main", "a" * 40)
    fake_gitlab.add_branch(PROJECT, "release/1.2", "b" * 40)
    fake_gitlab.add_branch(PROJECT, "release/1.3", "c" * 40)

    prs = GitLabBranchSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url, per_page=2).list_open()

    assert {p.branch: p.sha for p in prs} == {"main": "a" * 40, "release/1.2": "b" * 40, "release/1.3": "c" * 40}
    assert {p.number for p in prs} == {naming.branch_number(b) for b in ("main", "release/1.2", "release/1.3")}
    assert all(naming.is_branch_number(p.number) for p in prs)
    assert {p.branch: p.slug for p in prs} == {
        "main": "main",
        "release/1.2": "release-1-2",
        "release/1.3": "release-1-3",
    }
    assert fake_gitlab.calls("GET", r"/projects/.*/repository/branches") == 2


def test_a_deleted_branch_disappears_from_the_listing(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_branch(PROJECT, "release/1.2", "b" * 40)
    branches = GitLabBranchSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url)
    assert len(branches.list_open()) == 1

    fake_gitlab.delete_branch(PROJECT, "release/1.2")

    assert branches.list_open() == []


def test_a_failed_branch_listing_is_temporary(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_branch(PROJECT, "release/1.2", "b" * 40)
    fake_gitlab.fail(r"/repository/branches", 503)

    with pytest.raises(SourceUnavailable):
        GitLabBranchSource(PROJECT, token=TOKEN, base_url=fake_gitlab.url, retries=0).list_open()
