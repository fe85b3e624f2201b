"""What the GitHub and GitLab sources (prenv.sources.github, prenv.sources.gitlab) share: the bounded retry policy of
their HTTP clients, how an HTTP failure becomes one of our errors, how long a rate limit says to wait, and the
rate-limit record the metrics read.

Both forges fail the same ways: a rate limit, a 5xx, a refused token, a repository or project that is not there or
not visible, a timeout, a connection that cannot be made. The first two and the network ones are temporary
(``SourceUnavailable``, the reconciler backs off and tries again; a rate limit says how long), the others are not
(``SourceError``). Messages carry status codes and exception type names only, never a response body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import requests
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from prenv.errors import SourceError, SourceUnavailable

# Used when a rate-limited response says nothing about when the limit resets.
DEFAULT_RATE_LIMIT_DELAY = 60.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The rate limit as the last response reported it, for metrics."""

    remaining: int
    limit: int
    reset: datetime


def bounded_retry(retries: int, *, statuses: tuple[int, ...], methods: frozenset[str]) -> Retry:
    """urllib3's retries as both clients use them: connection errors, read timeouts and ``statuses``, ``retries``
    times at most, with short backoff, for ``methods`` only (a retried POST could do twice what it says). A rate
    limit is never slept through (``Retry-After`` is not obeyed here): the cycle reports it with its delay."""
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=0.2,
        backoff_max=2.0,
        status_forcelist=statuses,
        allowed_methods=methods,
        respect_retry_after_header=False,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def rate_limit_delay(retry_after: float | None, reset: float | None) -> float:
    """Seconds to wait: ``Retry-After`` when the answer has one, else until the limit's reset (a Unix time), else
    ``DEFAULT_RATE_LIMIT_DELAY``. Negative values count as absent."""
    if retry_after is not None and retry_after >= 0:
        return float(retry_after)
    if reset is not None and reset >= 0:
        return max(0.0, reset - time.time())
    return DEFAULT_RATE_LIMIT_DELAY


def http_error(what: str, status: int, missing: str, *, rate_limited_for: float | None = None) -> SourceError:
    """The error for an HTTP error answer about ``what`` (``github owner/name``).

    Args:
        status: the answer's status code.
        missing: what a 404 means is not there (``repository``, ``project``).
        rate_limited_for: when the answer is a rate limit (the forge decides from its headers), the delay it asked.
    """
    if rate_limited_for is not None:
        return SourceUnavailable(f"{what}: rate limited", delay=rate_limited_for)
    if status >= 500:
        return SourceUnavailable(f"{what}: server error (HTTP {status})")
    if status == 401:
        return SourceError(f"{what}: bad credentials (HTTP 401)")
    if status == 404:
        return SourceError(f"{what}: {missing} not found or not visible (HTTP 404)")
    return SourceError(f"{what}: request refused (HTTP {status})")


def network_error(what: str, error: requests.RequestException) -> SourceUnavailable:
    """The error for a request that got no answer: a timeout, or a connection refused or reset, DNS, TLS, too many
    retries of a 5xx. All worth another cycle."""
    if isinstance(error, requests.Timeout):
        return SourceUnavailable(f"{what}: timed out")
    # urllib3 wraps a read timeout that exhausted its retries in a ConnectionError.
    if isinstance(error, requests.ConnectionError) and isinstance(
        getattr(error.args[0] if error.args else None, "reason", None), ReadTimeoutError
    ):
        return SourceUnavailable(f"{what}: timed out")
    return SourceUnavailable(f"{what}: cannot reach the API ({type(error).__name__})")
