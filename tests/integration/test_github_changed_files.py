"""A PR's changed files through real PyGithub against the fake GitHub server: read once per head sha, then free.

The reconcile pass at the end uses FakeGateway (stacks in memory): what is measured here is the GitHub requests a
path filter costs, not the deployment (tests/e2e/test_reviewer_workflow.py deploys for real).
"""

from __future__ import annotations

from prenv.errors import SourceUnavailable
from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.model import ActionKind
from prenv.reconcile import Reconciler
from prenv.sources.github import GitHubSource
from testsupport.github_server import FakeGitHub

REPO = "octo/shop"
FILES = r"/repos/octo/shop/pulls/\d+/files"


def source(fake: FakeGitHub) -> GitHubSource:
    return GitHubSource(REPO, token="ghp_test", base_url=fake.base_url, retries=0, seconds_between_requests=None)


def test_changed_files_are_read_once_per_head_commit(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 3, sha="1" * 40)
    fake_github.set_files(REPO, 3, ["docs/a.md", "app/main.py"])
    github = source(fake_github)
    [pr] = github.list_open()

    assert github.changed_files(pr) == ("docs/a.md", "app/main.py")
    assert github.changed_files(pr) == ("docs/a.md", "app/main.py")
    assert fake_github.calls("GET", FILES) == 1

    fake_github.add_pull(REPO, 3, sha="2" * 40)
    fake_github.set_files(REPO, 3, ["docs/a.md"])
    [pushed] = github.list_open()
    assert github.changed_files(pushed) == ("docs/a.md",)
    assert fake_github.calls("GET", FILES) == 2


def test_changed_files_are_read_across_pages(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 3)
    fake_github.set_files(REPO, 3, [f"src/f{i}.py" for i in range(250)])
    github = source(fake_github)
    [pr] = github.list_open()
    assert len(github.changed_files(pr)) == 250
    assert fake_github.calls("GET", FILES) == 3


def test_an_unreadable_file_list_is_a_temporary_source_failure(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 3)
    fake_github.fail(r"GET /repos/octo/shop/pulls/3/files", 502)
    github = source(fake_github)
    [pr] = github.list_open()
    try:
        github.changed_files(pr)
    except SourceUnavailable:
        pass
    else:
        raise AssertionError("a 502 must be a temporary failure")


def test_a_docs_only_pr_gets_no_environment_and_an_unchanged_resync_costs_one_request(fake_github: FakeGitHub) -> None:
    for n, files in ((1, ["docs/guide.md", "README.md"]), (2, ["app/main.py", "docs/guide.md"])):
        fake_github.add_pull(REPO, n, labels=["preview"])
        fake_github.set_files(REPO, n, files)
    github = source(fake_github)
    gateway = FakeGateway()
    reconciler = Reconciler(
        source=github,
        filters=compile_filters(
            FilterSettings(labels=("preview",), paths_exclude=("docs/**", "*.md")), changed_files=github.changed_files
        ),
        gateway=gateway,
        config_hash=lambda _pr: "cfg",
    )
    reconciler.sync()
    assert [s.pr for s in gateway.list_stacks()] == [2]

    before = len(fake_github.requests)
    result = reconciler.sync()
    assert len(fake_github.requests) - before == 1, "one listing; the file lists are cached"
    assert result.plan.as_dict()["unchanged"] == [2]


def test_a_resync_of_200_unchanged_prs_under_a_path_filter_costs_the_listing_only(fake_github: FakeGitHub) -> None:
    for n in range(1, 201):
        fake_github.add_pull(REPO, n, labels=["preview"])
        fake_github.set_files(REPO, n, ["app/main.py"])
    github = source(fake_github)
    reconciler = Reconciler(
        source=github,
        filters=compile_filters(
            FilterSettings(labels=("preview",), paths_include=("app/**",)), changed_files=github.changed_files
        ),
        gateway=FakeGateway(),
        config_hash=lambda _pr: "cfg",
    )
    reconciler.sync()
    assert fake_github.calls("GET", FILES) == 200  # once per PR and head commit

    before = len(fake_github.requests)
    result = reconciler.sync()
    assert len(fake_github.requests) - before == 2, "two pages of the listing (100 per page), no file list"
    assert len(result.plan.of(ActionKind.UNCHANGED)) == 200
