"""The fake GitHub server speaks enough REST for PyGithub: later features (PR comments, deployments) rely on it."""

from __future__ import annotations

import pytest
from github import Auth, Github, GithubException

from testsupport.github_server import FakeGitHub

REPO = "octo/shop"


@pytest.fixture
def gh(fake_github: FakeGitHub) -> Github:
    fake_github.add_pull(REPO, 1, labels=["preview"])
    return Github(
        auth=Auth.Token("t"),
        base_url=fake_github.base_url,
        seconds_between_requests=None,
        seconds_between_writes=None,
        retry=0,
    )


def test_issue_comments_can_be_created_listed_and_edited(gh: Github, fake_github: FakeGitHub) -> None:
    issue = gh.get_repo(REPO).get_issue(1)
    created = issue.create_comment("Preview is deploying")
    issue.create_comment("second")

    created.edit("Preview is ready: https://shop-1.preview.example")

    bodies = [c.body for c in issue.get_comments()]
    assert bodies == ["Preview is ready: https://shop-1.preview.example", "second"]
    assert fake_github.calls("PATCH", rf"/repos/{REPO}/issues/comments/{created.id}") == 1
    assert fake_github.calls("POST", rf"/repos/{REPO}/issues/1/comments") == 2


def test_comment_listings_are_paginated(gh: Github, fake_github: FakeGitHub) -> None:
    issue = gh.get_repo(REPO).get_issue(1)
    for i in range(5):
        issue.create_comment(f"c{i}")
    paged = Github(auth=Auth.Token("t"), base_url=fake_github.base_url, per_page=2, seconds_between_requests=None)

    bodies = [c.body for c in paged.get_repo(REPO).get_issue(1).get_comments()]

    assert bodies == ["c0", "c1", "c2", "c3", "c4"]
    assert fake_github.calls("GET", rf"/repos/{REPO}/issues/1/comments") == 3


def test_deployments_and_their_statuses_round_trip(gh: Github, fake_github: FakeGitHub) -> None:
    repo = gh.get_repo(REPO)
    sha = fake_github.repo(REPO).pulls[1]["head"]["sha"]
    deployment = repo.create_deployment(
        ref="feature-1", environment="pr-1", transient_environment=True, auto_merge=False, required_contexts=[]
    )
    deployment.create_status("in_progress")
    deployment.create_status("success", environment_url="https://shop-1.preview.example")

    listed = list(repo.get_deployments(environment="pr-1"))
    assert [(d.id, d.sha, d.environment) for d in listed] == [(deployment.id, sha, "pr-1")]
    statuses = list(deployment.get_statuses())
    assert [s.state for s in statuses] == ["success", "in_progress"]
    assert statuses[0].environment_url == "https://shop-1.preview.example"
    assert list(repo.get_deployments(environment="pr-2")) == []


def test_a_newer_successful_deployment_marks_the_previous_one_inactive(gh: Github) -> None:
    repo = gh.get_repo(REPO)
    first = repo.create_deployment(ref="feature-1", environment="pr-1", required_contexts=[])
    first.create_status("success")
    second = repo.create_deployment(ref="feature-1", environment="pr-1", required_contexts=[])
    second.create_status("success")

    assert next(iter(first.get_statuses())).state == "inactive"
    assert next(iter(second.get_statuses())).state == "success"


def test_labels_can_be_added_and_removed(gh: Github, fake_github: FakeGitHub) -> None:
    issue = gh.get_repo(REPO).get_issue(1)
    issue.add_to_labels("build/image-ready")
    issue.remove_from_labels("preview")

    assert [label["name"] for label in fake_github.repo(REPO).pulls[1]["labels"]] == ["build/image-ready"]


def test_rate_limit_is_reported(gh: Github, fake_github: FakeGitHub) -> None:
    core = gh.get_rate_limit().resources.core

    assert core.limit == 5000
    assert int(core.reset.timestamp()) == fake_github.rate_reset


def test_an_injected_404_applies_to_its_route_only(gh: Github, fake_github: FakeGitHub) -> None:
    fake_github.fail(rf"GET /repos/{REPO}/issues/1/comments", 404, times=1)
    issue = gh.get_repo(REPO).get_issue(1)

    with pytest.raises(GithubException) as caught:
        list(issue.get_comments())
    assert caught.value.status == 404
    assert list(issue.get_comments()) == []


def test_every_request_is_recorded(gh: Github, fake_github: FakeGitHub) -> None:
    gh.get_repo(REPO).get_pull(1)

    assert [(r.method, r.path) for r in fake_github.requests] == [
        ("GET", f"/repos/{REPO}"),
        ("GET", f"/repos/{REPO}/pulls/1"),
    ]
