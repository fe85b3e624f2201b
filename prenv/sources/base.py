"""The interfaces the reconciler reads the outside world through, so that it never knows where PRs (or images) come
from: ``PullRequestSource`` and ``ImageGate``.

Shaped after Argo CD's pull-request generator (``PullRequestService.List``): one method returning neutral records.
Filtering is not a source's business; it lives in ``prenv.filters`` and applies to every source alike.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from prenv.model import PullRequest


@runtime_checkable
class PullRequestSource(Protocol):
    """Lists the open pull requests of one repository (or of whatever stands in for it)."""

    def list_open(self) -> list[PullRequest]:
        """Return every open PR, once per reconcile cycle.

        Malformed records are skipped with a logged reason; they never fail the listing.

        Raises:
            SourceUnavailable: temporary failure (outage, timeout, 5xx, rate limit); ``delay`` is the number of
                seconds until a retry can succeed when the source knows it (the rate-limit reset).
            SourceError: permanent failure (bad credentials, unknown repository, unreadable file).
        """
        ...


class ImageGate(Protocol):
    """Answers whether the image for a tag can be deployed (prenv.sources.imagegate implements it over a registry)."""

    def is_ready(self, tag: str) -> bool:
        """Whether the image tagged ``tag`` exists.

        Raises:
            SourceUnavailable: the registry could not answer now.
            SourceError: the registry will never answer (no such repository, access denied).
        """
        ...
