"""An in-memory stack gateway: first-class stand-in for the Automation API in reconciler tests.

It records every call, can be told to fail an operation (temporarily or for good), and checks that no two
operations ever overlap on one stack, which the reconciler promises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prenv import naming
from prenv.errors import StackOperationError
from prenv.model import DesiredEnvironment, Drift, StackState


@dataclass
class FakeGateway:
    stacks: dict[int, StackState] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    fail: dict[tuple[str, int], StackOperationError] = field(default_factory=dict)
    delay: float = 0.0
    on_call: Callable[[str, int], None] | None = None
    max_concurrent: int = 0
    overlaps: list[int] = field(default_factory=list)
    drifted: dict[int, dict[str, int]] = field(default_factory=dict)
    _active: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list_stacks(self) -> list[StackState]:
        with self._lock:
            self.calls.append(("list", 0))
            return list(self.stacks.values())

    def up(self, desired: DesiredEnvironment) -> StackState:
        pr = desired.pr.number
        with self._operation("up", pr):
            state = StackState(
                pr=pr,
                stack=naming.stack_name(pr, desired.pr.slug),
                sha=desired.pr.sha,
                config_hash=desired.config_hash,
                url=f"http://web-{pr}.preview.test",
                result="succeeded",
            )
            with self._lock:
                self.stacks[pr] = state
            return state

    def destroy(self, pr: int) -> None:
        with self._operation("destroy", pr), self._lock:
            self.stacks.pop(pr, None)

    def check_drift(self, desired: DesiredEnvironment, *, heal: bool = False) -> Drift | None:
        """The drift a test put in ``drifted`` (pr → changes); healing clears it."""
        pr = desired.pr.number
        with self._operation("drift", pr):
            with self._lock:
                state = self.stacks.get(pr)
                if state is None:
                    return None
                changes = dict(self.drifted.get(pr, {}))
                if heal:
                    self.drifted.pop(pr, None)
            return Drift(pr, state.stack, changes, datetime.now(UTC), healed=heal and bool(changes))

    def _operation(self, kind: str, pr: int) -> _Op:
        return _Op(self, kind, pr)


class _Op:
    def __init__(self, gw: FakeGateway, kind: str, pr: int) -> None:
        self.gw, self.kind, self.pr = gw, kind, pr

    def __enter__(self) -> None:
        gw = self.gw
        with gw._lock:
            gw.calls.append((self.kind, self.pr))
            if self.pr in gw._active:
                gw.overlaps.append(self.pr)
            gw._active.add(self.pr)
            gw.max_concurrent = max(gw.max_concurrent, len(gw._active))
        if gw.on_call:
            gw.on_call(self.kind, self.pr)
        if gw.delay:
            time.sleep(gw.delay)
        error = gw.fail.get((self.kind, self.pr))
        if error is not None:
            with gw._lock:
                gw._active.discard(self.pr)
            raise error

    def __exit__(self, *exc: object) -> None:
        with self.gw._lock:
            self.gw._active.discard(self.pr)
