"""PR feedback off the operation's thread: an up never waits for GitHub.

Telling a PR "deploying" takes several GitHub requests (repository, deployment, status, comment), spaced by the
client's request throttle, and the optional URL health check polls for up to minutes. Done inline, all of that sat
between the webhook and the start of the pulumi run, and held an operation slot while the health check polled. Here
reports go onto one FIFO queue served by one thread, so they reach GitHub in the order they happened (a PR's
"deploying" always before its "ready") while the operation goes on at once.

The queue is bounded: when GitHub is down for long enough to fill it, the oldest reports are dropped with a warning
(the next report of a PR rewrites its whole comment, so nothing a reviewer needs is lost for good). ``flush`` waits
for what is queued, so a draining service still posts its last words.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from prenv.service.feedback import Feedback, Report

logger = logging.getLogger(__name__)


class BackgroundFeedback:
    """Wraps a Feedback so that ``report`` only queues; one thread tells the wrapped Feedback, in order.

    Args:
        inner: the Feedback that talks to GitHub; its ``report`` must not raise (GitHubFeedback's does not).
        max_pending: queued reports beyond this drop the oldest.
    """

    def __init__(self, inner: Feedback, *, max_pending: int = 10_000) -> None:
        self.inner = inner
        self.max_pending = max_pending
        self._pending: collections.deque[Report] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"BackgroundFeedback({self.inner!r})"

    def report(self, report: Report) -> None:
        with self._cond:
            if self._closed:
                logger.warning("PR %s: feedback closed; %s not told", report.pr, report.phase.value)
                return
            if len(self._pending) >= self.max_pending:
                old = self._pending.popleft()
                self.dropped += 1
                logger.warning("feedback queue full: dropped the oldest report (PR %s, %s)", old.pr, old.phase.value)
            self._pending.append(report)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + (1 if self._busy else 0)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every queued report was told; True when all were."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then stop the thread; later reports are refused with a warning."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        return flushed

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                report = self._pending.popleft()
                self._busy = True
            try:
                self.inner.report(report)
            except Exception:  # the top of the thread: one bad report must not stop the others
                logger.exception("PR %s: feedback failed", report.pr)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
