"""A stack gateway wrapper that lets the service watch operations without changing the reconciler.

Three needs meet here, all at the one place where an operation starts and ends:

* feedback says "deploying" when an update *starts* (the reconciler only reports when it ends);
* metrics count environments by status from the stacks the reconciler already listed (no extra backend reads);
* a draining service must not start new operations, yet must let running ones finish: once ``drain()`` is called,
  a new ``up``/``destroy`` fails fast with a temporary error before touching the stack, and ``wait_idle`` waits
  for the ones in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from prenv import naming
from prenv.errors import StackOperationError
from prenv.gateway.base import StackGateway
from prenv.model import DesiredEnvironment, Drift, StackState

logger = logging.getLogger(__name__)


class ShuttingDown(StackOperationError):
    """The service is draining: the operation was not started (temporary: the next process will do it)."""

    def __init__(self, stack: str) -> None:
        super().__init__(stack, "not started: the service is shutting down", temporary=True)


class ObservedGateway:
    """A ``StackGateway`` around another one.

    Args:
        inner: the real gateway.
        on_start: called in the operation's thread just before an ``up`` (with its desired environment) or a
            ``destroy`` (with None) is handed to ``inner``. Exceptions from it are logged, never raised.
    """

    def __init__(
        self,
        inner: StackGateway,
        on_start: Callable[[int, DesiredEnvironment | None], None] | None = None,
    ) -> None:
        self.inner = inner
        self.on_start = on_start
        self._cond = threading.Condition()
        self._active: set[int] = set()
        self._draining = False
        self._refused: set[int] = set()
        self._stacks: dict[int, StackState] = {}

    def list_stacks(self) -> list[StackState]:
        stacks = self.inner.list_stacks()
        with self._cond:
            self._stacks = {s.pr: s for s in stacks}
        return stacks

    def up(self, desired: DesiredEnvironment) -> StackState:
        pr = desired.pr.number
        self._admit(pr)
        try:
            self._notify(pr, desired)
            started = datetime.now(UTC)
            state = self.inner.up(desired)
            with self._cond:
                # An up's state does not say when the stack was made: as listed before, or now for a new one.
                before = self._stacks.get(pr)
                created = state.created_at or (before.created_at if before is not None else None) or started
                state = replace(state, created_at=created)
                self._stacks[pr] = state
            return state
        finally:
            self._leave(pr)

    def destroy(self, pr: int) -> None:
        self._admit(pr)
        try:
            self._notify(pr, None)
            self.inner.destroy(pr)
            with self._cond:
                self._stacks.pop(pr, None)
        finally:
            self._leave(pr)

    def check_drift(self, desired: DesiredEnvironment, *, heal: bool = False) -> Drift | None:
        """A drift check counts as an operation (a drain waits for it); none runs while another operation of the PR
        does, or while draining: then None."""
        pr = desired.pr.number
        with self._cond:
            if self._draining or pr in self._active:
                return None
            self._active.add(pr)
        try:
            return self.inner.check_drift(desired, heal=heal)
        finally:
            self._leave(pr)

    # --- what the service asks -------------------------------------------------------------------------------

    def snapshot(self) -> dict[int, StackState]:
        """The stacks as last listed, updated by every operation since."""
        with self._cond:
            return dict(self._stacks)

    def state_of(self, pr: int) -> StackState | None:
        with self._cond:
            return self._stacks.get(pr)

    def active(self) -> frozenset[int]:
        """PRs with an operation in flight."""
        with self._cond:
            return frozenset(self._active)

    def was_refused(self, pr: int) -> bool:
        """True (once) when the last operation of ``pr`` was refused because the service is draining."""
        with self._cond:
            if pr in self._refused:
                self._refused.discard(pr)
                return True
            return False

    def drain(self) -> None:
        """Refuse every operation from now on; those in flight continue."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no operation is in flight or ``timeout`` seconds passed; True when idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _admit(self, pr: int) -> None:
        with self._cond:
            if self._draining:
                self._refused.add(pr)
                raise ShuttingDown(naming.stack_name(pr))
            self._active.add(pr)

    def _leave(self, pr: int) -> None:
        with self._cond:
            self._active.discard(pr)
            self._cond.notify_all()

    def _notify(self, pr: int, desired: DesiredEnvironment | None) -> None:
        if self.on_start is None:
            return
        try:
            self.on_start(pr, desired)
        except Exception:  # a listener (feedback, metrics) must never stop an operation
            logger.exception("PR %s: operation listener failed", pr)
