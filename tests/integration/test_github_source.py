"""GitHubSource through real PyGithub against the fake GitHub server: pages, labels, forks and every failure."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from prenv.errors import ConfigError, SourceError, SourceUnavailable
from prenv.sources import GitHubAppCredentials, GitHubSource, PullRequestSource
from testsupport.github_server import FakeGitHub

REPO = "octo/shop"
PULLS = r"/repos/octo/shop/pulls"


def source(fake: FakeGitHub, *, per_page: int = 100, timeout: int = 5, retries: int = 0) -> GitHubSource:
    return GitHubSource(
        REPO,
        token="ghp_test",
        base_url=fake.base_url,
        per_page=per_page,
        timeout=timeout,
        retries=retries,
        seconds_between_requests=None,
    )


def test_a_github_source_is_a_pull_request_source(fake_github: FakeGitHub) -> None:
    assert isinstance(source(fake_github), PullRequestSource)


def test_every_open_pr_is_listed_across_pages_with_one_request_per_page(fake_github: FakeGitHub) -> None:
    for n in range(1, 8):
        fake_github.add_pull(REPO, n)
    fake_github.add_pull(REPO, 8)
    fake_github.close_pull(REPO, 8)

    prs = source(fake_github, per_page=3).list_open()

    assert [p.number for p in prs] == [1, 2, 3, 4, 5, 6, 7]
    assert fake_github.calls("GET", PULLS) == 3
    assert fake_github.calls() == 3  # the repository itself is never fetched
    pages = [r.query.get("page", ["1"])[0] for r in fake_github.requests]
    assert pages == ["1", "2", "3"]
    assert all(r.query["state"] == ["open"] for r in fake_github.requests)


def test_pr_fields_come_from_the_listing(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(
        REPO,
        5,
        sha="ABCDEF0123456789abcdef0123456789abcdef01",
        branch="feature/cart",
        base="develop",
        author="bob",
        title="Shopping cart",
        labels=["preview", "build/image-ready"],
        draft=True,
        updated_at="2026-03-04T05:06:07Z",
    )

    [pr] = source(fake_github).list_open()

    assert pr.number == 5
    assert pr.sha == "abcdef0123456789abcdef0123456789abcdef01"
    assert (pr.branch, pr.base, pr.author, pr.title) == ("feature/cart", "develop", "bob", "Shopping cart")
    assert pr.labels == frozenset({"preview", "build/image-ready"})
    assert pr.draft is True
    assert pr.fork is False
    assert pr.updated_at is not None and pr.updated_at.isoformat() == "2026-03-04T05:06:07+00:00"


def test_forks_are_detected_by_head_repository_including_deleted_forks(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.add_pull(REPO, 2, fork=True)
    fake_github.add_pull(REPO, 3, deleted_fork=True)

    prs = source(fake_github).list_open()

    assert {p.number: p.fork for p in prs} == {1: False, 2: True, 3: True}


def test_malformed_entries_are_skipped_without_extra_requests(
    fake_github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.add_pull(REPO, 2)["head"]["sha"] = None
    fake_github.add_pull(REPO, 3)["title"] = "\x1b[31mred alert\x1b[0m"
    fake_github.add_pull(REPO, 4)["head"]["ref"] = "x" * 2000
    del fake_github.add_pull(REPO, 5)["head"]
    fake_github.add_pull(REPO, 6)["number"] = "six"
    fake_github.add_pull(REPO, 7)

    with caplog.at_level(logging.WARNING, logger="prenv.sources.records"):
        prs = source(fake_github).list_open()

    assert [p.number for p in prs] == [1, 7]
    assert fake_github.calls() == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5
    assert any("PR #2: sha is missing" in m for m in messages)
    assert any("PR #3: title contains control characters" in m for m in messages)
    assert not any("red alert" in m or "x" * 100 in m for m in messages)


def test_an_unknown_repository_is_a_permanent_source_error(fake_github: FakeGitHub) -> None:
    with pytest.raises(SourceError) as caught:
        GitHubSource("octo/absent", token="t", base_url=fake_github.base_url).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "HTTP 404" in str(caught.value)


def test_bad_credentials_are_a_permanent_source_error(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.fail(PULLS, 401)

    with pytest.raises(SourceError) as caught:
        source(fake_github).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "bad credentials" in str(caught.value)


def test_a_forbidden_listing_that_is_not_a_rate_limit_is_permanent(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.fail(PULLS, 403, message="Resource not accessible by integration")

    with pytest.raises(SourceError, match="HTTP 403") as caught:
        source(fake_github).list_open()

    assert not isinstance(caught.value, SourceUnavailable)


def test_a_rate_limit_is_temporary_with_the_delay_until_reset(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.rate_limit(PULLS, reset_in=300)
    gh = source(fake_github, retries=2)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        gh.list_open()

    assert time.monotonic() - started < 5  # reported, not slept through
    assert caught.value.delay is not None and 290 <= caught.value.delay <= 300
    assert fake_github.calls("GET", PULLS) == 1
    assert gh.rate_limit is not None and gh.rate_limit.remaining == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
        (429, "Too Many Requests"),
    ],
    ids=["secondary rate limit", "HTTP 429"],
)
def test_a_limit_with_retry_after_is_temporary_with_that_delay(
    fake_github: FakeGitHub, status: int, message: str
) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.fail(PULLS, status, message=message, headers={"Retry-After": "42"})

    with pytest.raises(SourceUnavailable, match="rate limited") as caught:
        source(fake_github, retries=2).list_open()

    assert caught.value.delay == 42
    assert fake_github.calls("GET", PULLS) == 1


def test_a_rate_limit_on_a_later_page_fails_the_whole_listing(fake_github: FakeGitHub) -> None:
    for n in range(1, 5):
        fake_github.add_pull(REPO, n)
    fake_github.rate_limit(PULLS + r"\?.*\bpage=2\b", reset_in=60)

    with pytest.raises(SourceUnavailable) as caught:
        source(fake_github, per_page=2).list_open()

    assert caught.value.delay is not None and caught.value.delay > 0
    assert fake_github.calls("GET", PULLS) == 2


def test_the_last_seen_rate_limit_is_exposed_for_metrics(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    gh = source(fake_github)
    assert gh.rate_limit is None

    gh.list_open()

    assert gh.rate_limit is not None
    assert gh.rate_limit.limit == 5000
    assert gh.rate_limit.remaining == 4999
    assert gh.rate_limit.reset.timestamp() == fake_github.rate_reset


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_temporary_after_bounded_retries(fake_github: FakeGitHub, status: int) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.fail(PULLS, status)

    with pytest.raises(SourceUnavailable, match=f"HTTP {status}"):
        source(fake_github, retries=2).list_open()

    expected_attempts = 1 if status == 500 else 3
    assert fake_github.calls("GET", PULLS) == expected_attempts


def test_a_transient_gateway_error_is_retried_and_the_listing_succeeds(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.fail(PULLS, 502, times=1)

    prs = source(fake_github, retries=2).list_open()

    assert [p.number for p in prs] == [1]
    assert fake_github.calls("GET", PULLS) == 2


def test_a_slow_api_times_out_as_temporary_within_a_bounded_time(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    fake_github.slow(PULLS, 30)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        source(fake_github, timeout=1, retries=1).list_open()

    assert time.monotonic() - started < 6
    assert fake_github.calls("GET", PULLS) == 2


def test_a_stopped_server_is_temporary_and_the_source_recovers_when_it_returns(fake_github: FakeGitHub) -> None:
    fake_github.add_pull(REPO, 1)
    gh = source(fake_github)
    fake_github.stop()

    with pytest.raises(SourceUnavailable, match="cannot reach"):
        gh.list_open()

    fake_github.start()
    assert [p.number for p in gh.list_open()] == [1]


def test_a_github_app_lists_with_an_installation_token(fake_github: FakeGitHub, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    fake_github.add_pull(REPO, 1)
    gh = GitHubSource(
        REPO,
        app=GitHubAppCredentials(app_id=123, private_key_file=key_file, installation_id=456),
        base_url=fake_github.base_url,
        seconds_between_requests=None,
    )

    assert [p.number for p in gh.list_open()] == [1]

    token_request, listing = fake_github.requests
    assert (token_request.method, token_request.path) == ("POST", "/app/installations/456/access_tokens")
    assert token_request.headers["authorization"].startswith("Bearer ")
    assert listing.headers["authorization"] == f"token {fake_github.installation_tokens[456]}"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"repository": "not a repo"}, "github.repository"),
        ({"repository": REPO, "token": "t", "app": GitHubAppCredentials(1, Path("/k"), 2)}, "github.token"),
        ({"repository": REPO, "per_page": 500}, "github.per_page"),
        (
            {"repository": REPO, "app": GitHubAppCredentials(1, Path("/nonexistent.pem"), 2)},
            "github.app.private_key_file",
        ),
    ],
    ids=["malformed repository", "token and app", "page too large", "unreadable private key"],
)
def test_bad_configuration_fails_at_construction_naming_its_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GitHubSource(**kwargs)  # type: ignore[arg-type]

    assert caught.value.key == key


def test_the_token_never_appears_in_the_repr(fake_github: FakeGitHub) -> None:
    assert "ghp_test" not in repr(source(fake_github))
