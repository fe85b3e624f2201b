"""The reconciler: desired environments (filtered open PRs) against actual ``pr-*`` stacks, then act on the plan.

Rules that make it safe (see shared/DESIGN.md):

- desired state is derived, never stored; a cycle whose source failed has *no* desired state and destroys nothing;
- an unchanged PR (same sha and config hash as its stack records) costs no pulumi run;
- teardowns per cycle are capped, so a source that suddenly returns an empty list cannot wipe every environment;
- a stack is removed only after its destroy succeeded (the gateway's contract);
- never two operations on one stack at once; parallelism is bounded;
- temporary errors are retried with exponential backoff, permanent ones are reported once per (sha, config);
- a permanent destroy failure is reported once too, but never given up on (that would orphan the resources): it is
  retried at the backoff cap (``backoff_max_seconds``), in case an operator fixes its cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

from prenv.errors import PrenvError, SourceError
from prenv.filters import DropReason, FilterResult, PullRequestFilter
from prenv.gateway.base import StackGateway
from prenv.model import Action, ActionKind, DesiredEnvironment, Drift, EnvStatus, Plan, PullRequest, StackState
from prenv.sources.base import ImageGate, PullRequestSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    parallelism: int = 2
    max_teardowns_per_cycle: int = 5
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 300.0


class SkipReason(Enum):
    """Why an action was not attempted this time; the value is the text shown to people."""

    BUSY = "another operation on this stack is running"
    BACKING_OFF = "backing off after a temporary error"
    ALREADY_REPORTED = "permanent failure already reported"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one action."""

    action: Action
    ok: bool
    seconds: float = 0.0
    error: str | None = None
    temporary: bool = False
    skipped: SkipReason | None = None  # set when the action was not attempted


@dataclass(frozen=True, slots=True)
class CycleResult:
    plan: Plan
    outcomes: tuple[Outcome, ...]
    source_ok: bool
    filtered: FilterResult | None = None


def make_plan(
    desired: list[DesiredEnvironment] | None,
    actual: Iterable[StackState],
    *,
    max_teardowns: int,
    only: int | None = None,
    also: Collection[int] = (),
    reasons: Mapping[int, str] | None = None,
) -> Plan:
    """Decide, without side effects, what to do with every PR and stack.

    ``desired`` is None when the source failed: then nothing is destroyed and nothing is created. ``only`` limits
    the plan to one PR (a webhook for that PR) and the PRs in ``also`` (capacity: the PRs given a place this cycle
    and the environments evicted for them). ``reasons`` says why a stack is destroyed when it is not the default
    (an eviction).
    """
    focus = None if only is None else {only, *also}
    stacks = {s.pr: s for s in actual if focus is None or s.pr in focus}
    actions: list[Action] = []
    if desired is None:
        actions += [Action(ActionKind.UNCHANGED, pr, "source unavailable: keeping the stack") for pr in stacks]
        return Plan(tuple(sorted(actions, key=lambda a: a.pr)))
    wanted = {d.pr.number: d for d in desired if focus is None or d.pr.number in focus}
    for pr, d in wanted.items():
        stack = stacks.get(pr)
        if not d.image_ready:
            actions.append(Action(ActionKind.WAIT, pr, "waiting for the image", d))
        elif stack is None:
            actions.append(Action(ActionKind.CREATE, pr, "new PR", d))
        elif stack.sha != d.pr.sha:
            actions.append(Action(ActionKind.UPDATE, pr, "new commit", d))
        elif stack.config_hash != d.config_hash:
            actions.append(Action(ActionKind.UPDATE, pr, "configuration changed", d))
        elif stack.result != "succeeded":
            actions.append(Action(ActionKind.UPDATE, pr, "last deployment did not succeed", d))
        else:
            actions.append(Action(ActionKind.UNCHANGED, pr, "up to date", d))
    gone = sorted(pr for pr in stacks if pr not in wanted)
    for i, pr in enumerate(gone):
        if i < max_teardowns:
            why = (reasons or {}).get(pr, "PR closed or no longer matches the filters")
            actions.append(Action(ActionKind.DESTROY, pr, why))
        else:
            actions.append(Action(ActionKind.UNCHANGED, pr, "teardown cap reached this cycle"))
    return Plan(tuple(sorted(actions, key=lambda a: a.pr)))


@dataclass
class _Retry:
    failures: int = 0
    not_before: float = 0.0
    reported: str | None = None  # key of a permanent failure already reported


@dataclass(frozen=True, slots=True)
class RetryState:
    """What the reconciler remembers of a PR's failures (see :meth:`Reconciler.retry_state`)."""

    failures: int
    """Temporary failures in a row."""
    not_before: float
    """No new attempt before this time (of the reconciler's clock)."""
    reported: bool
    """A permanent failure was reported; the PR is left alone until its sha or config changes (a destroy is retried
    at the backoff cap instead)."""


@dataclass(frozen=True)
class Reconciler:
    """Plans and acts; every collaborator is given here and never replaced afterwards.

    Args:
        source: the open PRs (the service passes a TTL-filtering wrapper around the real source).
        filters: which PRs get an environment.
        gateway: the stack operations (the service passes an observing wrapper around the real gateway).
        config_hash: the effective config hash of a PR's stack; unchanged sha and hash mean no pulumi run.
        settings: parallelism, teardown cap, backoff.
        image_gate: when set, a PR waits until its image exists.
        image_tag: the image tag the gate is asked about.
        clock: monotonic seconds, for backoff.
        on_outcome: called with every outcome (in the operation's thread); exceptions are logged, never raised.
        on_plan: called with each plan that is carried out and the filters' verdict it came from (who waits for an
            environment, who is evicted), before its operations start; exceptions are logged, never raised.
    """

    source: PullRequestSource
    filters: PullRequestFilter
    gateway: StackGateway
    config_hash: Callable[[PullRequest], str]
    settings: ReconcileSettings = field(default_factory=ReconcileSettings)
    image_gate: ImageGate | None = None
    image_tag: Callable[[PullRequest], str] = lambda pr: f"pr-{pr.number}"
    clock: Callable[[], float] = time.monotonic
    on_outcome: Callable[[Outcome], None] | None = None
    on_plan: Callable[[Plan, FilterResult], None] | None = None
    _locks: dict[int, threading.Lock] = field(default_factory=dict, repr=False)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _retry: dict[int, _Retry] = field(default_factory=dict, repr=False)
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)
    """``settings.parallelism`` operations at most, whoever starts them: a full pass, the webhook workers' one-PR
    passes and drift checks all share it, so a burst of webhooks during a resync never runs more pulumi at once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_slots", threading.BoundedSemaphore(max(1, self.settings.parallelism)))

    def retry_state(self, pr: int) -> RetryState | None:
        """The failures remembered for ``pr``, or None when its last operation succeeded (or none ran)."""
        retry = self._retry.get(pr)
        if retry is None:
            return None
        return RetryState(retry.failures, retry.not_before, retry.reported is not None)

    def forget_failures(self) -> None:
        """Drop every backoff and reported failure: the next pass attempts every PR again."""
        self._retry.clear()

    def desired(
        self, actual: Iterable[StackState] | None = None
    ) -> tuple[list[DesiredEnvironment] | None, FilterResult | None]:
        """The environments that should exist, or (None, None) when the source failed this cycle. ``actual``: the
        stacks, for the cap on environments (who holds a place, who is idle longest)."""
        deployed = None if actual is None else {s.pr: s.last_update for s in actual}
        try:
            prs = self.source.list_open()
            result = self.filters.apply(prs, deployed)  # path filters read the PRs' changed files from the source
        except SourceError as e:
            logger.warning("PR source failed (%s); this cycle destroys nothing", e)
            return None, None
        desired = []
        for pr in result.kept:
            ready = True
            if self.image_gate is not None:
                try:
                    ready = self.image_gate.is_ready(self.image_tag(pr))
                except SourceError as e:
                    logger.warning("image gate failed for PR %s (%s); treating as not ready", pr.number, e)
                    ready = False
            desired.append(DesiredEnvironment(pr=pr, config_hash=self.config_hash(pr), image_ready=ready))
        return desired, result

    def plan(self, only: int | None = None) -> tuple[Plan, bool, FilterResult | None]:
        actual = self.gateway.list_stacks()
        desired, filtered = self.desired(actual)
        also: list[int] = []
        reasons: dict[int, str] = {}
        if filtered is not None:
            evicted = {d.pr.number: d.detail for d in filtered.dropped if d.reason is DropReason.EVICTED}
            also, reasons = [*filtered.admitted, *evicted], evicted
        plan = make_plan(
            desired,
            actual,
            max_teardowns=self.settings.max_teardowns_per_cycle,
            only=only,
            also=also,
            reasons=reasons,
        )
        if desired is not None and plan.of(ActionKind.DESTROY):
            # A paginated listing is no snapshot: a PR can drop out of one listing while others close. Destroy only
            # what a second listing confirms is gone (one extra request, only in cycles that would destroy).
            again, _ = self.desired(actual)
            if again is None:
                plan = make_plan(None, actual, max_teardowns=0, only=only)
                return plan, False, filtered
            seen = {d.pr.number for d in again}
            plan = Plan(
                tuple(
                    Action(ActionKind.UNCHANGED, a.pr, "absent from one listing only: keeping it for now")
                    if a.kind is ActionKind.DESTROY and a.pr in seen
                    else a
                    for a in plan.actions
                )
            )
        return plan, desired is not None, filtered

    def sync(self, *, dry_run: bool = False, only: int | None = None) -> CycleResult:
        """One reconcile pass: plan, then (unless ``dry_run``) run the plan's operations in parallel."""
        plan, source_ok, filtered = self.plan(only)
        if dry_run:
            return CycleResult(plan, (), source_ok, filtered)
        if self.on_plan is not None and filtered is not None:
            try:
                self.on_plan(plan, filtered)
            except Exception:
                logger.exception("plan listener failed")
        todo = [a for a in plan.actions if a.kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DESTROY)]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.parallelism), thread_name_prefix="op") as pool:
            outcomes = tuple(pool.map(self._execute, todo))
        return CycleResult(plan, outcomes, source_ok, filtered)

    def check_drift(
        self,
        *,
        heal: bool = False,
        limit: int | None = None,
        last_checked: Mapping[int, float] | None = None,
        min_age: float = 0.0,
        only: int | None = None,
    ) -> list[Drift]:
        """Drift checks of deployed environments that are up to date (same sha and config: anything an up would
        change now is drift, not a new commit), those checked longest ago first and at most ``limit`` of them.

        ``last_checked`` maps a PR to the monotonic time (``clock``) of its last check; one checked less than
        ``min_age`` seconds ago is not due. A PR with an operation running is skipped, as is one whose check fails
        (logged; the next pass tries again). Nothing is checked when the source fails: what is up to date is
        unknown then.
        """
        plan, source_ok, _ = self.plan(only)
        if not source_ok:
            return []
        seen = last_checked or {}
        now = self.clock()
        due = [
            a.desired
            for a in plan.actions
            if a.kind is ActionKind.UNCHANGED
            and a.desired is not None
            and now - seen.get(a.pr, float("-inf")) >= min_age
        ]
        due.sort(key=lambda d: seen.get(d.pr.number, float("-inf")))
        found = []
        for desired in due[:limit]:
            lock = self._lock_of(desired.pr.number)
            if not lock.acquire(blocking=False):
                continue
            try:
                with self._slots:
                    drift = self.gateway.check_drift(desired, heal=heal)
            except PrenvError as e:
                logger.warning("PR %s: drift check failed: %s", desired.pr.number, e)
                continue
            finally:
                lock.release()
            if drift is not None:
                found.append(drift)
        return found

    def _lock_of(self, pr: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(pr, threading.Lock())

    def busy(self) -> set[int]:
        """PRs with an operation running right now."""
        with self._locks_guard:
            return {pr for pr, lock in self._locks.items() if lock.locked()}

    def _execute(self, action: Action) -> Outcome:
        retry = self._retry.setdefault(action.pr, _Retry())
        key = self._failure_key(action)
        if retry.reported is not None and retry.reported == key and action.kind is not ActionKind.DESTROY:
            return self._emit(Outcome(action, ok=False, skipped=SkipReason.ALREADY_REPORTED))
        if self.clock() < retry.not_before:
            return self._emit(Outcome(action, ok=False, skipped=SkipReason.BACKING_OFF))
        lock = self._lock_of(action.pr)
        if not lock.acquire(blocking=False):
            return self._emit(Outcome(action, ok=False, skipped=SkipReason.BUSY))
        started = self.clock()
        try:
            with self._slots:
                started = self.clock()  # the operation's own time, not its wait for a slot
                if action.kind is ActionKind.DESTROY:
                    logger.info("PR %s: destroying (%s)", action.pr, action.reason)
                    self.gateway.destroy(action.pr)
                else:
                    assert action.desired is not None
                    logger.info("PR %s: %s (%s)", action.pr, action.kind.value, action.reason)
                    self.gateway.up(action.desired)
        except PrenvError as e:
            return self._emit(self._failed(action, retry, key, e, self.clock() - started))
        except Exception as e:  # the top of an operation: nothing may escape and stop the other PRs
            logger.exception("PR %s: unexpected error during %s", action.pr, action.kind.value)
            err = PrenvError(f"unexpected {type(e).__name__} during {action.kind.value}")
            return self._emit(self._failed(action, retry, key, err, self.clock() - started))
        finally:
            lock.release()
        self._retry.pop(action.pr, None)
        return self._emit(Outcome(action, ok=True, seconds=self.clock() - started))

    def _failed(self, action: Action, retry: _Retry, key: str, e: PrenvError, seconds: float) -> Outcome:
        if e.temporary:
            retry.failures += 1
            backoff = min(
                self.settings.backoff_base_seconds * 2 ** (retry.failures - 1), self.settings.backoff_max_seconds
            )
            retry.not_before = self.clock() + max(backoff, e.delay or 0.0)
            logger.warning("PR %s: %s failed, retrying in %.0fs: %s", action.pr, action.kind.value, backoff, e)
        elif action.kind is ActionKind.DESTROY:
            # Giving up would orphan every resource of the stack; retrying at full rate would hammer whatever refuses.
            retry.failures += 1
            retry.not_before = self.clock() + self.settings.backoff_max_seconds
            first, retry.reported = retry.reported != key, key
            log = logger.error if first else logger.warning
            log(
                "PR %s: destroy failed for good, retrying in %.0fs: %s", action.pr, self.settings.backoff_max_seconds, e
            )
        else:
            retry.reported = key
            logger.error("PR %s: %s failed: %s", action.pr, action.kind.value, e)
        return Outcome(action, ok=False, seconds=seconds, error=str(e), temporary=e.temporary)

    @staticmethod
    def _failure_key(action: Action) -> str:
        d = action.desired
        return f"{action.kind.value}:{d.pr.sha if d else ''}:{d.config_hash if d else ''}"

    def _emit(self, outcome: Outcome) -> Outcome:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:
                logger.exception("outcome listener failed")
        return outcome


def status_of(stack: StackState, busy: bool = False) -> EnvStatus:
    """The ``prenv list`` status of a stack."""
    if busy or stack.result == "in-progress":
        return EnvStatus.UPDATING
    if stack.result == "succeeded":
        return EnvStatus.READY
    return EnvStatus.FAILED
