"""The GitLab sources: open merge requests of one project, or its branches, through python-gitlab.

The same care as the GitHub source (prenv.sources.github), for the same reasons:

* python-gitlab sleeps through a 429 (``Retry-After``, up to ten times) by default; a cycle must instead fail fast
  with ``SourceUnavailable(delay=...)``, so rate limits are never obeyed here (``obey_rate_limit=False``).
* python-gitlab's own retries of 5xx and timeouts sleep until ``RateLimit-Reset`` when a response carries it (GitLab
  sends it), up to a minute per attempt. They are off; urllib3 retries instead, a bounded number of times with short
  backoff, idempotent methods only (a retried POST could create a second note).
* Listings are read as the raw JSON pages (``Gitlab.http_list``), never as lazily completed objects, and every entry
  goes through ``prenv.sources.records`` like every other source's.
* python-gitlab objects and exceptions never leave this module; failures become ``SourceError``/``SourceUnavailable``
  with messages built from status codes, never from response bodies.

A merge request's ``iid`` (its number within the project, ``!42``) is prenv's PR number. An MR is a fork MR when its
source project is not its target project; ``draft`` (or the older ``work_in_progress``) is the draft flag.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gitlab
import requests
from gitlab.exceptions import GitlabAuthenticationError, GitlabHttpError, GitlabParsingError
from requests.adapters import HTTPAdapter

from prenv.errors import ConfigError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources.branches import branch_records
from prenv.sources.forge import (
    DEFAULT_RATE_LIMIT_DELAY,
    RateLimit,
    bounded_retry,
    http_error,
    network_error,
    rate_limit_delay,
)
from prenv.sources.records import parse_records

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://gitlab.com"
# ``group/subgroup/name`` (GitLab paths: letters, digits, '_', '-', '.'; not starting with '-') or a numeric id.
_SEGMENT = r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}"
_PROJECT = re.compile(rf"[1-9][0-9]{{0,18}}|{_SEGMENT}(?:/{_SEGMENT}){{1,20}}")
# An instance root: scheme, host, optional port and path (a relative-URL install), no query; not the API root.
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")


def client(
    base_url: str,
    *,
    token: str | None = None,
    job_token: str | None = None,
    ca_bundle: Path | None = None,
    timeout: int = 10,
    retries: int = 2,
    per_page: int = 100,
) -> gitlab.Gitlab:
    """A python-gitlab client with prenv's policy; the sources and the MR feedback both use it.

    Args:
        base_url: the instance root (``https://gitlab.example.com``), without ``/api/v4``.
        token: a personal, project or group access token (``PRIVATE-TOKEN``); or
        job_token: a CI job token (``JOB-TOKEN``), used only when no token is given.
        ca_bundle: a PEM file to verify the instance's certificate; default the system trust store.
        timeout: seconds per request.
        retries: extra attempts of idempotent requests after connection errors, read timeouts and 5xx.
        per_page: page size (GitLab caps it at 100).

    Raises:
        ConfigError: an empty token, or a CA bundle that is not a readable file.
    """
    if not _BASE_URL.fullmatch(base_url) or base_url.rstrip("/").endswith("/api/v4"):
        raise ConfigError("source.gitlab.base_url", "expected http(s)://host[:port][/path], without /api/v4")
    if token is not None and not token:
        raise ConfigError("source.gitlab.token", "empty token")
    if token is None and job_token is not None and not job_token:
        raise ConfigError("source.gitlab.job_token", "empty token")
    verify: bool | str = True
    if ca_bundle is not None:
        if not Path(ca_bundle).is_file():
            raise ConfigError("source.gitlab.ca_bundle", "not a readable file")
        verify = str(ca_bundle)
    if token is None and job_token is None:
        logger.warning("gitlab: no token configured; only public projects can be read")
    retry = bounded_retry(retries, statuses=(500, 502, 503, 504), methods=frozenset({"GET", "HEAD", "PUT"}))
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return gitlab.Gitlab(
        base_url.rstrip("/"),
        private_token=token,
        job_token=job_token if token is None else None,
        ssl_verify=verify,
        timeout=timeout,
        per_page=per_page,
        retry_transient_errors=False,
        keep_base_url=True,
        session=session,
    )


def project_path(project: str) -> str:
    """``project`` validated (a path or a numeric id), ready for an API path (``group%2Fname``).

    Raises:
        ConfigError: naming ``source.gitlab.project``.
    """
    if not _PROJECT.fullmatch(project) or ".." in project:
        raise ConfigError("source.gitlab.project", "expected group/name (subgroups allowed) or a numeric project id")
    return quote(project, safe="")


class _GitLabLister:
    """What both GitLab sources share: the client, bounded retries, the rate limit, and error translation."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.project!r}, base_url={self.base_url!r})"

    def __init__(
        self,
        project: str,
        *,
        token: str | None = None,
        job_token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        ca_bundle: Path | None = None,
        timeout: int = 10,
        retries: int = 2,
        per_page: int = 100,
    ) -> None:
        if not 1 <= per_page <= 100:
            raise ConfigError("source.gitlab.per_page", "must be between 1 and 100")
        if timeout <= 0:
            raise ConfigError("source.gitlab.timeout", "must be positive")
        if retries < 0:
            raise ConfigError("source.gitlab.retries", "must not be negative")
        self.project = project
        self._path = project_path(project)
        self.base_url = base_url.rstrip("/")
        self._per_page = per_page
        self._gitlab = client(
            self.base_url,
            token=token,
            job_token=job_token,
            ca_bundle=ca_bundle,
            timeout=timeout,
            retries=retries,
            per_page=per_page,
        )
        self._retry_after: float | None = None
        self._rate_limit: RateLimit | None = None
        self._gitlab.session.hooks["response"].append(self._remember_rate_limit)

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit the last response reported (``RateLimit-*`` headers), for metrics; None before one."""
        return self._rate_limit

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._gitlab.session.close()

    def _list(self, what: str, query: dict[str, Any]) -> list[Mapping[str, Any]]:
        """Every entry of ``/projects/<project>/<what>``, page by page (``Link: rel="next"``)."""
        items = self._gitlab.http_list(
            f"/projects/{self._path}/{what}",
            {**query, "per_page": self._per_page},
            iterator=True,
            obey_rate_limit=False,
        )
        return [item if isinstance(item, Mapping) else {} for item in items]

    def _remember_rate_limit(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        headers = response.headers
        remaining, limit = _float(headers.get("RateLimit-Remaining")), _float(headers.get("RateLimit-Limit"))
        reset = _float(headers.get("RateLimit-Reset"))
        if remaining is not None and limit is not None and reset is not None:
            self._rate_limit = RateLimit(int(remaining), int(limit), datetime.fromtimestamp(reset, UTC))
        if response.status_code == 429:
            self._retry_after = rate_limit_delay(_float(headers.get("Retry-After")), reset)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        what = f"gitlab {self.project}"
        self._retry_after = None
        try:
            yield
        except GitlabAuthenticationError as e:
            raise http_error(what, 401, "project") from e
        except GitlabHttpError as e:
            status = e.response_code or 0
            delay = None
            if status == 429:  # the answer's own delay, read by the response hook
                delay = self._retry_after if self._retry_after is not None else DEFAULT_RATE_LIMIT_DELAY
            raise http_error(what, status, "project", rate_limited_for=delay) from e
        except GitlabParsingError as e:
            # A proxy's HTML error page in place of JSON: the instance is not answering properly right now.
            raise SourceUnavailable(f"{what}: the answer was not JSON") from e
        except requests.RequestException as e:
            raise network_error(what, e) from e


class GitLabSource(_GitLabLister):
    """Lists the open merge requests of one project on gitlab.com or a self-managed instance.

    Args:
        project: ``group/subgroup/name`` or the numeric project id.
        token: a personal, project or group access token with ``read_api``; or
        job_token: a CI job token (used when ``token`` is None).
        base_url: the instance root, e.g. ``https://gitlab.example.com``.
        ca_bundle: PEM bundle for a self-managed instance's certificate.
        timeout: seconds per HTTP request.
        retries: extra attempts for connection errors, timeouts and 5xx, with short backoff.
        per_page: page size (GitLab caps it at 100).

    Raises:
        ConfigError: a malformed project, an empty token, an unreadable CA bundle, a bad number.
    """

    def list_open(self) -> list[PullRequest]:
        started = time.monotonic()
        with self._translate_errors():
            raws = self._list("merge_requests", {"state": "opened", "order_by": "created_at", "sort": "asc"})
        prs = parse_records((merge_request_record(raw) for raw in raws), source=f"gitlab {self.project}")
        logger.info(
            "gitlab %s: %d open merge requests (%d entries) in %.2fs",
            self.project,
            len(prs),
            len(raws),
            time.monotonic() - started,
        )
        return prs


class GitLabBranchSource(_GitLabLister):
    """Lists the branches of one project as environments (``source.type: gitlab-branches``).

    Every branch is listed; ``filters.branch_include``/``branch_exclude`` pick the ones that get an environment. Same
    arguments as :class:`GitLabSource`.
    """

    def list_open(self) -> list[PullRequest]:
        with self._translate_errors():
            raws = self._list("repository/branches", {})
        pairs = ((raw.get("name"), _obj(raw.get("commit")).get("id")) for raw in raws)
        prs = branch_records(pairs, source=f"gitlab {self.project} branches")
        logger.info("gitlab %s: %d branches", self.project, len(prs))
        return prs


def merge_request_record(raw: Mapping[str, Any]) -> dict[str, object]:
    """GitLab's merge request JSON → the neutral record shape that ``parse_records`` validates. Never raises."""
    labels = raw.get("labels")
    if isinstance(labels, list):
        # Plain names by default; objects with ``name`` when listed ``with_labels_details``.
        labels = [label.get("name") if isinstance(label, Mapping) else label for label in labels]
    source_project, target_project = raw.get("source_project_id"), raw.get("target_project_id")
    return {
        "number": raw.get("iid"),
        "sha": raw.get("sha"),
        "branch": raw.get("source_branch"),
        "base": raw.get("target_branch"),
        "author": _obj(raw.get("author")).get("username", ""),
        "title": raw.get("title", ""),
        "labels": labels,
        "draft": bool(raw.get("draft") or raw.get("work_in_progress")),
        # A missing source project (deleted fork) counts as a fork: its code is not the project's.
        "fork": source_project is None or source_project != target_project,
        "updated_at": raw.get("updated_at"),
    }


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
