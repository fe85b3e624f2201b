"""An in-memory PR source: the first-class stand-in for tests and demos (Argo CD ships ``fake.go`` likewise).

Records and failures are set from outside; every call is counted so tests can assert how often a source was read.
Raw records go through the same validation as every other source, so tests of bad input can use the fake too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prenv.errors import SourceError
from prenv.model import PullRequest
from prenv.sources.records import parse_records


class FakeSource:
    """A ``PullRequestSource`` whose open PRs and failures are whatever the test says."""

    def __init__(self, prs: Iterable[PullRequest] = ()) -> None:
        self._lock = threading.Lock()
        self._prs: dict[int, PullRequest] = {pr.number: pr for pr in prs}
        self._raw: list[object] | None = None
        self._failures: list[SourceError] = []
        self._failure_forever: SourceError | None = None
        self.calls = 0

    def list_open(self) -> list[PullRequest]:
        with self._lock:
            self.calls += 1
            if self._failures:
                raise self._failures.pop(0)
            if self._failure_forever is not None:
                raise self._failure_forever
            if self._raw is not None:
                return parse_records(self._raw, source="fake")
            return sorted(self._prs.values(), key=lambda pr: pr.number)

    def set(self, prs: Iterable[PullRequest]) -> None:
        """Replace the open PRs."""
        with self._lock:
            self._raw = None
            self._prs = {pr.number: pr for pr in prs}

    def set_raw(self, records: Iterable[object]) -> None:
        """Replace the open PRs with raw records, validated on every listing like a real source's."""
        with self._lock:
            self._raw = list(records)

    def upsert(self, pr: PullRequest) -> None:
        """Open a PR, or replace the PR with the same number (a push, a label change...)."""
        with self._lock:
            self._raw = None
            self._prs[pr.number] = pr

    def close(self, number: int) -> None:
        """Close a PR; closing an unknown number is a no-op."""
        with self._lock:
            self._prs.pop(number, None)

    def fail_next(self, error: SourceError, times: int = 1) -> None:
        """Raise ``error`` from the next ``times`` listings, then recover."""
        with self._lock:
            self._failures.extend([error] * times)

    def fail_always(self, error: SourceError | None) -> None:
        """Raise ``error`` from every listing until called with ``None``."""
        with self._lock:
            self._failure_forever = error
