"""The GitHub PR source: one paginated listing of open PRs per cycle, through PyGithub.

Why the care: this is the only source that talks to the internet, under a rate limit, with credentials.

* PyGithub's default retry policy sleeps until a rate limit resets (up to an hour) and retries 5xx ten times; a
  cycle must instead fail fast with ``SourceUnavailable(delay=...)`` and let the reconciler back off. Retries and
  timeouts are therefore bounded here.
* PyGithub fetches a missing attribute lazily (one GET per object). A malformed listing entry must not turn into
  one request per PR, so each entry is read from the JSON the listing returned, and validated like every other
  source's records (``prenv.sources.records``).
* PyGithub objects and exceptions never leave this module: records go out as ``PullRequest``, failures as our
  ``SourceError``/``SourceUnavailable`` with messages built from status codes, never from response bodies.

Two more reads, each for a few PRs only: a PR's changed files (``changed_files``, for the path filters; read once per
head sha and cached, so an unchanged PR costs no request) and a PR's comment bodies (``comment_bodies``, for fork
approvals: prenv.sources.approvals).

A listing that pages through a PR list while it changes can see a PR twice (harmless: the first sighting wins) or,
when a PR closes mid-listing, miss one on a page boundary. GitHub offers no snapshot listing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from github.GithubObject import GithubObject

from prenv.errors import ConfigError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources.branches import branch_records
from prenv.sources.forge import RateLimit, bounded_retry, http_error, network_error, rate_limit_delay
from prenv.sources.records import parse_records

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.github.com"
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# Changed-file listings remembered, one per (PR, head sha); beyond this the least recently used is forgotten.
_FILES_CACHE_SIZE = 4096
# GitHub lists at most 3000 files of a PR; a path is at most 4096 bytes on every filesystem git runs on.
_MAX_PATH = 4096


@dataclass(frozen=True, slots=True)
class GitHubAppCredentials:
    """A GitHub App installation: the app's id, its private key file (PEM) and the installation id."""

    app_id: int
    private_key_file: Path
    installation_id: int


def client(
    auth: Auth.Auth | None,
    base_url: str,
    *,
    timeout: int,
    retries: int,
    per_page: int = 30,
    seconds_between_requests: float | None = 0.25,
) -> Github:
    """A PyGithub client with prenv's retry policy; the source and the PR feedback both use it.

    Retries cover connection errors, read timeouts and 502/503/504 only, for idempotent methods. A 403/429 is a
    rate limit: it is reported with its delay instead of being slept through inside a cycle.
    """
    retry = bounded_retry(retries, statuses=(502, 503, 504), methods=frozenset({"GET", "HEAD"}))
    return Github(
        auth=auth,
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        retry=retry,
        per_page=per_page,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=None,
        lazy=True,
    )


class GitHubSource:
    """Lists the open PRs of one repository on github.com or GitHub Enterprise.

    Args:
        repository: ``owner/name``.
        token: a personal access or fine-grained token (read from env or a file by the caller); or
        app: GitHub App installation credentials. With neither, requests are anonymous (60 per hour).
        base_url: API root; for GitHub Enterprise ``https://<host>/api/v3``.
        timeout: seconds per HTTP request.
        retries: extra attempts for connection errors, read timeouts and 502/503/504, with short backoff. A
            listing takes at most about ``(retries + 1) * timeout`` seconds per page.
        per_page: page size (GitHub caps it at 100).
        seconds_between_requests: PyGithub's throttle between consecutive requests.

    Raises:
        ConfigError: a malformed repository name, both token and app given, or an unreadable private key.
    """

    def __init__(
        self,
        repository: str,
        *,
        token: str | None = None,
        app: GitHubAppCredentials | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: int = 10,
        retries: int = 2,
        per_page: int = 100,
        seconds_between_requests: float | None = 0.25,
    ) -> None:
        if not _REPOSITORY.fullmatch(repository):
            raise ConfigError("github.repository", "expected owner/name")
        if token is not None and app is not None:
            raise ConfigError("github.token", "set either a token or a GitHub App, not both")
        if not 1 <= per_page <= 100:
            raise ConfigError("github.per_page", "must be between 1 and 100")
        if timeout <= 0:
            raise ConfigError("github.timeout", "must be positive")
        if retries < 0:
            raise ConfigError("github.retries", "must not be negative")
        self.repository = repository
        self.base_url = base_url.rstrip("/")
        self._rate_limit: RateLimit | None = None
        self._files: OrderedDict[tuple[int, str], tuple[str, ...]] = OrderedDict()
        self._files_lock = threading.Lock()
        self._github = client(
            _auth(token, app),
            self.base_url,
            timeout=timeout,
            retries=retries,
            per_page=per_page,
            seconds_between_requests=seconds_between_requests,
        )

    def __repr__(self) -> str:
        return f"GitHubSource({self.repository!r}, base_url={self.base_url!r})"

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit seen on the last response, or ``None`` before the first one. Never makes a request."""
        return self._rate_limit

    def list_open(self) -> list[PullRequest]:
        started = time.monotonic()
        raws: list[Mapping[str, Any]] = []
        with self._translate_errors():
            # lazy: the repository object costs no request; the listing is the only call (one per page).
            repo = self._github.get_repo(self.repository)
            for item in repo.get_pulls(state="open", sort="created", direction="asc"):
                raws.append(_listing_json(item))
        self._remember_rate_limit()
        prs = parse_records((_neutral(raw) for raw in raws), source=f"github {self.repository}")
        logger.info(
            "github %s: %d open pull requests (%d entries) in %.2fs",
            self.repository,
            len(prs),
            len(raws),
            time.monotonic() - started,
        )
        return prs

    def changed_files(self, pr: PullRequest) -> tuple[str, ...]:
        """The paths ``pr`` changes (renames give both paths), read once per head sha and then cached.

        Raises:
            SourceUnavailable, SourceError: as for the listing.
        """
        key = (pr.number, pr.sha)
        with self._files_lock:
            cached = self._files.get(key)
            if cached is not None:
                self._files.move_to_end(key)
                return cached
        paths: list[str] = []
        with self._translate_errors():
            pull = self._github.get_repo(self.repository).get_pull(pr.number)  # lazy: no request
            for item in pull.get_files():
                raw = _listing_json(item)
                for name in (raw.get("filename"), raw.get("previous_filename")):
                    if isinstance(name, str) and 0 < len(name) <= _MAX_PATH:
                        paths.append(name)
        self._remember_rate_limit()
        files = tuple(paths)
        with self._files_lock:
            self._files[key] = files
            while len(self._files) > _FILES_CACHE_SIZE:
                self._files.popitem(last=False)
        logger.debug("github %s: PR #%d changes %d file(s)", self.repository, pr.number, len(files))
        return files

    def comment_bodies(self, number: int) -> list[str]:
        """The bodies of PR ``number``'s comments, oldest first (empty bodies as empty strings).

        Raises:
            SourceUnavailable, SourceError: as for the listing.
        """
        bodies: list[str] = []
        with self._translate_errors():
            issue = self._github.get_repo(self.repository).get_issue(number)  # lazy: no request
            for item in issue.get_comments():
                body = _listing_json(item).get("body")
                bodies.append(body if isinstance(body, str) else "")
        self._remember_rate_limit()
        return bodies

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._github.close()

    def _remember_rate_limit(self, headers: Mapping[str, Any] | None = None) -> None:
        requester = self._github.requester
        remaining, limit = requester.rate_limiting
        reset = requester.rate_limiting_resettime
        if headers is not None:
            remaining = _int_header(headers, "x-ratelimit-remaining", remaining)
            limit = _int_header(headers, "x-ratelimit-limit", limit)
            reset = _int_header(headers, "x-ratelimit-reset", reset)
        if limit >= 0 and reset > 0:
            self._rate_limit = RateLimit(remaining, limit, datetime.fromtimestamp(reset, UTC))

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Map PyGithub and requests failures onto our hierarchy; messages carry status codes only."""
        what = f"github {self.repository}"
        try:
            yield
        except RateLimitExceededException as e:
            self._remember_rate_limit(e.headers)
            raise SourceUnavailable(f"{what}: rate limited", delay=_rate_limit_delay(e.headers)) from e
        except GithubException as e:
            headers = e.headers or {}
            self._remember_rate_limit(headers)
            status = e.status
            limited = status == 429 or (status == 403 and _int_header(headers, "x-ratelimit-remaining", 1) == 0)
            delay = _rate_limit_delay(headers) if limited else None
            raise http_error(what, status, "repository", rate_limited_for=delay) from e
        except requests.RequestException as e:
            raise network_error(what, e) from e


class GitHubBranchSource(GitHubSource):
    """Lists the branches of one repository as environments (``source.type: github-branches``).

    Every branch is listed (one request per page of 100); ``filters.branch_include``/``branch_exclude`` pick the
    ones that get an environment (prenv.sources.branches). Same arguments and failures as :class:`GitHubSource`.
    """

    def __repr__(self) -> str:
        return f"GitHubBranchSource({self.repository!r}, base_url={self.base_url!r})"

    def list_open(self) -> list[PullRequest]:
        raws: list[Mapping[str, Any]] = []
        with self._translate_errors():
            repo = self._github.get_repo(self.repository)
            for item in repo.get_branches():
                raws.append(_listing_json(item))
        self._remember_rate_limit()
        pairs = ((raw.get("name"), _obj(raw.get("commit")).get("sha")) for raw in raws)
        prs = branch_records(pairs, source=f"github {self.repository} branches")
        logger.info("github %s: %d branches", self.repository, len(prs))
        return prs


def _auth(token: str | None, app: GitHubAppCredentials | None) -> Auth.Auth | None:
    if token is not None:
        if not token:
            raise ConfigError("github.token", "empty token")
        return Auth.Token(token)
    if app is not None:
        try:
            key = Path(app.private_key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("github.app.private_key_file", "cannot read the private key file") from e
        return Auth.AppAuth(app.app_id, key).get_installation_auth(app.installation_id)
    logger.warning("github: no token or app configured; anonymous requests are limited to 60 per hour")
    return None


def _listing_json(item: GithubObject) -> Mapping[str, Any]:
    # The listing already returned the whole PR object. GithubObject.raw_data returns that JSON as is, whereas
    # the PullRequest subclass's override first "completes" the object with one GET per PR.
    data = GithubObject.raw_data.fget(item)  # type: ignore[attr-defined]
    return data if isinstance(data, Mapping) else {}


def pull_request_of(raw: Mapping[str, Any]) -> PullRequest | None:
    """One PR's JSON (``GET /pulls/<n>``) as a validated record, or None when it is malformed."""
    prs = parse_records([_neutral(raw)], source="github pull request")
    return prs[0] if prs else None


def _neutral(raw: Mapping[str, Any]) -> dict[str, object]:
    """GitHub's PR JSON → the neutral record shape that ``parse_records`` validates. Never raises."""
    head = _obj(raw.get("head"))
    base = _obj(raw.get("base"))
    head_repo = head.get("repo")
    base_repo = _obj(base.get("repo"))
    labels = raw.get("labels")
    return {
        "number": raw.get("number"),
        "sha": head.get("sha"),
        "branch": head.get("ref"),
        "base": base.get("ref"),
        "author": _obj(raw.get("user")).get("login", ""),
        "title": raw.get("title", ""),
        "labels": [_obj(label).get("name") for label in labels] if isinstance(labels, list) else labels,
        "draft": raw.get("draft", False),
        "fork": _is_fork(head_repo, base_repo),
        "updated_at": raw.get("updated_at"),
    }


def _is_fork(head_repo: object, base_repo: Mapping[str, Any]) -> bool:
    """A PR is from a fork when its head repository is another repository, or is gone (a deleted fork)."""
    if not isinstance(head_repo, Mapping):
        return True
    head_id, base_id = head_repo.get("id"), base_repo.get("id")
    if head_id is not None and base_id is not None:
        return bool(head_id != base_id)
    return bool(head_repo.get("full_name") != base_repo.get("full_name") or head_repo.get("full_name") is None)


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int_header(headers: Mapping[str, Any], name: str, default: int) -> int:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                return int(float(value))
            except (TypeError, ValueError):
                return default
    return default


def _rate_limit_delay(headers: Mapping[str, Any] | None) -> float:
    """Seconds until the limit resets: ``Retry-After`` (secondary limits) or ``X-RateLimit-Reset`` (primary)."""
    headers = headers or {}
    return rate_limit_delay(_int_header(headers, "retry-after", -1), _int_header(headers, "x-ratelimit-reset", -1))
