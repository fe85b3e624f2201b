"""The service's work queue: one reconcile per PR at a time, bursts coalesced, a bounded number at once.

Webhooks arrive in bursts (a push, a label and a review within seconds). Each names a PR; what the queue
guarantees:

* a PR is never reconciled twice at the same time by the queue;
* events for a PR that is already queued add nothing (the queued run will read the latest state anyway);
* events for a PR whose run is in progress cause exactly one more run after it, because the running one may
  have read the source before the event's change: no event is lost;
* at most ``workers`` runs at once; each runs in a worker thread because a reconcile blocks (Pulumi);
* a run that reports the PR busy (another reconcile, e.g. the periodic resync, holds its stack) is retried
  after ``retry_delay`` seconds;
* ``close()`` stops starting runs; ``wait(timeout)`` waits for the ones in progress. Queued PRs are dropped: the
  next process's start-up resync covers them.

All methods except ``work`` run on the event loop; ``submit_threadsafe`` is for other threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)


class WorkQueue:
    """Per-PR coalescing queue.

    Args:
        work: reconciles one PR (blocking); returns True when the PR was busy and must be tried again later.
        workers: maximum runs at once.
        retry_delay: seconds before retrying a busy PR.
    """

    def __init__(self, work: Callable[[int], bool], *, workers: int = 2, retry_delay: float = 1.0) -> None:
        self._work = work
        self._workers = max(1, workers)
        self._retry_delay = retry_delay
        self._queue: asyncio.Queue[int | None] = asyncio.Queue()
        self._queued: set[int] = set()
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="reconcile")
        self.runs = 0

    def start(self) -> None:
        """Start the workers on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._worker(), name=f"queue-worker-{i}") for i in range(self._workers)]

    def submit(self, pr: int) -> bool:
        """Ask for a reconcile of ``pr``; False when the queue is closed."""
        if self._closed:
            return False
        if pr in self._running:
            self._again.add(pr)
        elif pr not in self._queued:
            self._queued.add(pr)
            self._queue.put_nowait(pr)
        return True

    def submit_threadsafe(self, pr: int) -> None:
        if self._loop is not None and not self._closed:
            self._loop.call_soon_threadsafe(self.submit, pr)

    def depth(self) -> int:
        """PRs waiting for a worker (runs in progress not included; a pending rerun counts)."""
        return len(self._queued) + len(self._again)

    def running(self) -> frozenset[int]:
        return frozenset(self._running)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Start no new run. Runs in progress continue; see ``wait``."""
        if self._closed:
            return
        self._closed = True
        dropped = len(self._queued) + len(self._again)
        if dropped:
            logger.info("work queue closed; %d queued reconcile(s) left to the next start-up resync", dropped)
        for _ in self._tasks:
            self._queue.put_nowait(None)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers to finish their runs (after ``close``); True when all did within ``timeout``."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        if not pending:
            self._executor.shutdown(wait=False)
        return not pending

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pr = await self._queue.get()
            if pr is None or self._closed:
                return
            self._queued.discard(pr)
            self._running.add(pr)
            busy = False
            try:
                self.runs += 1
                busy = await loop.run_in_executor(self._executor, self._work, pr)
            except Exception:  # the top of a run: one PR's failure must not stop the worker
                logger.exception("PR %s: reconcile failed", pr)
            finally:
                self._running.discard(pr)
            if self._closed:
                continue
            if pr in self._again:
                self._again.discard(pr)
                self.submit(pr)
            elif busy:
                loop.call_later(self._retry_delay, self.submit, pr)
