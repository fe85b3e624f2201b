"""The service's core, without HTTP: webhooks become queued per-PR reconciles, a periodic full resync catches what
webhooks missed, every outcome feeds metrics and PR feedback, and a shutdown drains without interrupting an update.

How it attaches to the reconciler without changing it: :meth:`Wiring.around` builds, before the reconciler, an
``ObservedGateway`` around the real gateway (to see operations start, to know the stacks, to refuse new operations
while draining), a ``TtlSource`` around the real source (expired PRs disappear from the desired state, so their
stacks are destroyed) and a hook for outcomes. The reconciler is built with those (prenv.service.runner, the
composition root); ``Service`` then subscribes to the hooks and never touches the reconciler's attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prenv.filters import DropReason, FilterResult
from prenv.gateway.base import StackGateway
from prenv.model import ActionKind, DesiredEnvironment, Drift, Plan, PullRequest, StackState
from prenv.reconcile import Outcome, Reconciler, SkipReason
from prenv.reservations import ReadReservation, Reservation
from prenv.service.command_actions import CommandActions
from prenv.service.commands import Command
from prenv.service.feedback import Feedback, NullFeedback, Phase, Report
from prenv.service.hooks import Hook
from prenv.service.leadership import Leadership
from prenv.service.metrics import RateLimitView, ServiceMetrics
from prenv.service.observe import ObservedGateway
from prenv.service.queue import WorkQueue
from prenv.service.ttl import Expiry, TtlPolicy, TtlSource
from prenv.service.webhooks import DeliveryLog
from prenv.sleep import AWAKE_LABEL, SleepPolicy, SleepSource
from prenv.sources.base import PullRequestSource

logger = logging.getLogger(__name__)

WAKE_BY_PUSH = f"push or add the label `{AWAKE_LABEL}` to wake it"

# Why a webhook action would tear an environment down, shown in the PR comment if it does.
_TEARDOWN_WHY = {
    "closed": "the PR was closed",
    "converted_to_draft": "the PR was converted to a draft",
    "unlabeled": "a label was removed",
    "labeled": "a label was added",
    "merged": "the merge request was merged",
    "updated": "the merge request changed (draft, labels, title or target branch)",
    "branch-deleted": "the branch was deleted",
    "pushed": "the branch no longer matches the filters",
    "edited": "the PR's title or target branch changed",
}
_DEFAULT_WHY = "the PR was closed or no longer matches the filters"


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """Behaviour of the service (see prenv.settings.ServeSettings for the documented knobs)."""

    repository: str | None = None
    """GitHub ``owner/name`` whose webhooks are acted on (None: any)."""
    gitlab_project: str | None = None
    """GitLab ``group/name`` path or numeric id whose webhooks are acted on (None: any)."""
    branches: bool = False
    """The source lists branches: push events reconcile a branch's environment, PR/MR events are ignored."""
    max_body_bytes: int = 1024 * 1024
    resync_seconds: float = 300.0
    shutdown_grace_seconds: float = 600.0
    workers: int = 2
    delivery_cache_size: int = 10_000
    retry_delay_seconds: float = 1.0
    drift_check_seconds: float = 0.0
    """Check an up-to-date environment for drift once its last check is older than this; 0: never."""
    drift_checks_per_hour: int = 12
    self_heal: bool = False


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the service puts around the real gateway and source, built before the reconciler that is given them.

    Give the reconciler ``gateway``, ``source`` and ``on_outcome=outcomes``; give the service this object, and it
    subscribes to the three hooks.
    """

    gateway: ObservedGateway
    source: PullRequestSource
    """The TTL source when TTLs are on, else the real source."""
    ttl: TtlSource | None
    started: Hook[[int, DesiredEnvironment | None]]
    expired: Hook[[PullRequest, Expiry]]
    outcomes: Hook[[Outcome]]
    sleep: SleepSource | None = None
    """The sleep source under the TTL source (None: no sleeping); ``/preview sleep`` and ``wake`` are told to it."""
    plans: Hook[[Plan, FilterResult]] = field(default_factory=lambda: Hook("plan"))
    """Give it to the reconciler as ``on_plan``: who waits for an environment, who is evicted."""

    @classmethod
    def around(
        cls,
        gateway: StackGateway,
        source: PullRequestSource,
        ttl: TtlPolicy | None = None,
        sleep: SleepPolicy | None = None,
    ) -> Wiring:
        """Wrap the real ``gateway`` and ``source``; ``ttl`` None keeps environments as long as their PRs are open,
        ``sleep`` None never puts one to sleep."""
        started: Hook[[int, DesiredEnvironment | None]] = Hook("operation start")
        expired: Hook[[PullRequest, Expiry]] = Hook("expiry")
        observed = ObservedGateway(gateway, on_start=started)
        sleep_source = None if sleep is None else SleepSource(source, observed.list_stacks, sleep)
        inner = sleep_source or source
        listing = sleep_source.listed if sleep_source is not None else observed.list_stacks  # one listing for both
        ttl_source = None if ttl is None else TtlSource(inner, listing, ttl, on_expire=expired)
        return cls(observed, ttl_source or inner, ttl_source, started, expired, Hook("outcome"), sleep_source)


class Service:
    """Owns the work queue, the resync loop, metrics, deliveries and the drain.

    Args:
        reconciler: built with ``wiring``'s gateway, source and outcome hook.
        wiring: see :class:`Wiring`; the service subscribes to its hooks.
        secret: the webhook HMAC key.
        options: see ServiceOptions.
        feedback: where outcomes are told to the PR.
        rate_limit: the GitHub rate limit last seen by the source, for metrics.
        is_leader: with leader election, whether this replica may act; None when it runs alone.
        commands: carries out ``/preview`` comment commands (one at a time, off the event loop); None ignores them.
        reservations: reads what an environment reserves (prenv.reservations.QuotaReader.read), once after each
            successful up: for the PR comment and the per-environment gauges; None: not shown.
        leadership: with leader election, the election itself (gives ``is_leader`` when that is not passed): the
            leader's URL for relaying webhooks, and stepping down after the drain.

    Raises:
        ValueError: an empty secret, or a reconciler not built with ``wiring``.
    """

    def __init__(
        self,
        reconciler: Reconciler,
        wiring: Wiring,
        *,
        secret: bytes,
        options: ServiceOptions = ServiceOptions(),
        feedback: Feedback | None = None,
        rate_limit: Callable[[], RateLimitView | None] = lambda: None,
        is_leader: Callable[[], bool] | None = None,
        leadership: Leadership | None = None,
        commands: CommandActions | None = None,
        reservations: ReadReservation | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        built_with = ((reconciler.gateway, wiring.gateway), (reconciler.source, wiring.source))
        if any(got is not wired for got, wired in built_with) or reconciler.on_outcome is not wiring.outcomes:
            raise ValueError("the reconciler must be built with the wiring's gateway, source and outcome hook")
        self.reconciler = reconciler
        self.secret = secret
        self.options = options
        self.feedback: Feedback = feedback or NullFeedback()
        self.leadership = leadership
        if leadership is not None:
            leadership.subscribe(self.leadership_changed)
        self.is_leader = is_leader or (leadership.is_leader if leadership is not None else None)
        self.gateway = wiring.gateway
        self.ttl = wiring.ttl
        self.sleep = wiring.sleep
        wiring.started.subscribe(self._operation_started)
        wiring.expired.subscribe(self._expired)
        wiring.outcomes.subscribe(self._on_outcome)
        wiring.plans.subscribe(self._on_plan)
        self.deliveries = DeliveryLog(options.delivery_cache_size)
        self.queue = WorkQueue(self._reconcile_one, workers=options.workers, retry_delay=options.retry_delay_seconds)
        self.metrics = ServiceMetrics(
            environments=lambda: self.gateway.snapshot().values(),
            busy=self.gateway.active,
            queue_depth=self.queue.depth,
            rate_limit=rate_limit,
        )
        self._why: dict[int, str] = {}
        self._queued: dict[int, tuple[int, str]] = {}  # PR → (position, why) last told; for capacity
        self._evicting: set[int] = set()  # PRs whose destroy this cycle is an eviction
        self.reservations = reservations
        self._reserved: dict[int, Reservation | None] = {}  # PR → read after its last up (for later reports)
        self._why_lock = threading.Lock()
        self._ready = threading.Event()
        self._draining = False
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None  # the resync loop's: stop, or resync now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._drift_task: asyncio.Task[None] | None = None
        self._drift_checked: dict[int, float] = {}  # PR → monotonic time of its last drift check
        self._resync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resync")
        self.commands = commands
        self._command_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="command")
        self._drained: bool | None = None
        self.resyncs = 0

    # --- state the HTTP layer reads --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the first full resync finished (at once for a follower, which does not resync)."""
        return self._ready.is_set() or self.role == "follower"

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def role(self) -> str:
        if self.is_leader is None:
            return "standalone"
        return "leader" if self.is_leader() else "follower"

    def enqueue(self, pr: int, action: str | None = None) -> bool:
        """Queue a reconcile of ``pr`` (on the event loop); False when draining."""
        if self._draining:
            return False
        if action is not None:
            with self._why_lock:
                self._why[pr] = _TEARDOWN_WHY.get(action, _DEFAULT_WHY)
        return self.queue.submit(pr)

    def command(self, command: Command) -> bool:
        """Carry out a ``/preview`` command in the background, then reconcile its PR if it asks to; False when
        draining. Commands run one at a time, in arrival order."""
        if self._draining:
            return False
        if self.commands is None:
            logger.info("PR %s: /preview %s ignored (commands are off)", command.pr, command.verb)
            return True
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._command_pool.submit(self._run_command, command, loop)
        return True

    def _run_command(self, command: Command, loop: asyncio.AbstractEventLoop | None) -> None:
        if self._draining or self.commands is None or (self.is_leader is not None and not self.is_leader()):
            return
        result = self.commands.handle(command)
        if result.sleep is not None and self.sleep is not None:
            self.sleep.request(command.pr, result.sleep)
        if not result.reconcile:
            return
        self.reconciler.filters.forgive(command.pr)  # /preview after an eviction: it may take a place again
        if result.why is not None:
            with self._why_lock:
                self._why[command.pr] = result.why
        if loop is None:
            self.queue.submit_threadsafe(command.pr)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self.queue.submit, command.pr)

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the queue workers and the resync loop (whose first pass runs now)."""
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.queue.start()
        self._resync_task = asyncio.create_task(self._resync_loop(), name="resync")
        if self.options.drift_check_seconds > 0:
            self._drift_task = asyncio.create_task(self._drift_loop(), name="drift")
        logger.info(
            "service started: %d worker(s), full resync every %.0fs", self.options.workers, self.options.resync_seconds
        )

    def begin_drain(self) -> None:
        """Stop accepting webhooks and starting operations; safe to call more than once."""
        if self._draining:
            return
        self._draining = True
        self.gateway.drain()
        self.queue.close()
        self._command_pool.shutdown(wait=False, cancel_futures=True)
        if self._stopping is not None:
            self._stopping.set()
        self._wake_resync()
        busy = sorted(self.gateway.active())
        logger.info("draining: no new operations; waiting for %d in flight %s", len(busy), busy)

    async def drain(self, grace: float | None = None) -> bool:
        """Drain and wait up to ``grace`` seconds for running operations; True when all finished in time."""
        if self._drained is not None:
            return self._drained
        self.begin_drain()
        grace = self.options.shutdown_grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        done = await self.queue.wait(max(0.0, deadline - time.monotonic()))
        tasks = [t for t in (self._resync_task, self._drift_task) if t is not None]
        if tasks:
            _finished, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            done = done and not pending
        loop = asyncio.get_running_loop()
        idle = await loop.run_in_executor(None, self.gateway.wait_idle, max(0.0, deadline - time.monotonic()))
        flush = getattr(self.feedback, "flush", None)  # background feedback: post the last reports before exit
        if callable(flush):
            await loop.run_in_executor(None, flush, max(5.0, deadline - time.monotonic()))
        self._drained = done and idle
        if self._drained:
            self._resync_pool.shutdown(wait=False)
            logger.info("drained: every operation finished")
        else:
            logger.error(
                "shutdown grace of %.0fs exceeded with operations still running: %s",
                grace,
                sorted(self.gateway.active()),
            )
        return self._drained

    async def _resync_loop(self) -> None:
        assert self._stopping is not None and self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            await loop.run_in_executor(self._resync_pool, self._resync_once)
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.options.resync_seconds)
            self._wake.clear()

    async def _drift_loop(self) -> None:
        """One drift check every ``3600 / drift_checks_per_hour`` seconds (the environment checked longest ago, if
        due), on the resync thread so that it never overlaps a full resync."""
        assert self._stopping is not None
        loop = asyncio.get_running_loop()
        interval = 3600.0 / self.options.drift_checks_per_hour
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)
            if not self._stopping.is_set():
                await loop.run_in_executor(self._resync_pool, self.check_drift_once)

    def check_drift_once(self) -> list[Drift]:
        """One pass of the background drift check (leader only): at most one due environment; drift found is a
        metric and a line in the PR's comment (healed at once with ``self_heal``)."""
        if self._draining or (self.is_leader is not None and not self.is_leader()):
            return []
        try:
            found = self.reconciler.check_drift(
                heal=self.options.self_heal,
                limit=1,
                last_checked=self._drift_checked,
                min_age=self.options.drift_check_seconds,
            )
        except Exception:  # the top of the loop: the next pass tries again
            logger.exception("drift check failed")
            return []
        now = self.reconciler.clock()
        for drift in found:
            self._drift_checked[drift.pr] = now
            self.metrics.drift(drift)
            if drift.drifted:
                state = self.gateway.state_of(drift.pr)
                self.feedback.report(
                    Report(
                        drift.pr,
                        Phase.READY,
                        _now(),
                        url=state.url if state is not None else None,
                        drift=drift.summary(),
                        **self._cost(drift.pr, state, read=False),
                    )
                )
        return found

    def _wake_resync(self) -> None:
        """Cut the resync loop's wait short (from any thread)."""
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._wake.set)

    def leadership_changed(self, leader: bool) -> None:
        """The election's callback (from its thread): a replica that just became leader resyncs at once, so what
        arrived during the failover (or was queued on the old leader) is acted on now, not a resync period later."""
        if leader and not self._draining:
            logger.info("leader now: full resync at once")
            self._wake_resync()

    def step_down(self) -> None:
        """After the drain: leave the election, giving the Lease up so another replica takes over at once."""
        if self.leadership is not None:
            self.leadership.release()

    # --- work (in threads) -----------------------------------------------------------------------------------

    def _resync_once(self) -> None:
        if self.is_leader is not None and not self.is_leader():
            return
        try:
            result = self.reconciler.sync()
        except Exception:  # the top of the loop: the next pass tries again
            logger.exception("full resync failed")
            self.metrics.resyncs.labels("error").inc()
            return
        self.resyncs += 1
        self.metrics.resyncs.labels("ok" if result.source_ok else "source_unavailable").inc()

    def _reconcile_one(self, pr: int) -> bool:
        """One webhook-triggered reconcile; True when another reconcile held the stack and this must retry."""
        if self._draining or (self.is_leader is not None and not self.is_leader()):
            return False
        result = self.reconciler.sync(only=pr)
        return any(o.skipped is SkipReason.BUSY for o in result.outcomes)

    # --- listeners -------------------------------------------------------------------------------------------

    def _operation_started(self, pr: int, desired: DesiredEnvironment | None) -> None:
        if desired is not None:
            self.feedback.report(Report(pr, Phase.DEPLOYING, _now(), pull=desired.pr))

    def _expired(self, pr: PullRequest, verdict: Expiry) -> None:
        with self._why_lock:
            self._why[pr.number] = (
                f"its TTL expired ({verdict.reason}); push a commit or change a label to bring it back"
            )

    def _on_plan(self, plan: Plan, filtered: FilterResult) -> None:
        """Before a plan runs: evictions get their reason, and a PR waiting for an environment is told its place in
        the queue whenever it changes (an unchanged queue costs no request)."""
        destroying = set(plan.of(ActionKind.DESTROY))
        with self._why_lock:
            for d in filtered.dropped:
                if d.reason is DropReason.EVICTED and d.pr.number in destroying:
                    self._why[d.pr.number] = d.detail
                    self._evicting.add(d.pr.number)
            queued = filtered.queued()
            self.metrics.queued.set(len(queued))
            now_queued = {d.pr.number: (d.position or 0, d.detail) for d in queued}
            changed = [d for d in queued if self._queued.get(d.pr.number) != now_queued[d.pr.number]]
            self._queued = now_queued
        for d in changed:
            self.feedback.report(
                Report(d.pr.number, Phase.QUEUED, _now(), pull=d.pr, reason=d.detail, position=d.position)
            )

    def _on_outcome(self, outcome: Outcome) -> None:
        self.metrics.observe(outcome)
        action = outcome.action
        if action.kind is ActionKind.DESTROY and outcome.skipped is None:
            with self._why_lock:
                evicted = action.pr in self._evicting
                self._evicting.discard(action.pr)
            if evicted and outcome.ok:
                self.metrics.evictions.inc()
        self._tell(outcome)

    def _tell(self, outcome: Outcome) -> None:
        action = outcome.action
        pr = action.pr
        if outcome.skipped is not None or self.gateway.was_refused(pr):
            return
        pull = action.desired.pr if action.desired is not None else None
        if action.kind is ActionKind.DESTROY:
            with self._why_lock:
                why = self._why.pop(pr, _DEFAULT_WHY)
            phase = Phase.TORN_DOWN if outcome.ok else Phase.TEARDOWN_FAILED
            if outcome.ok:
                self._reserved.pop(pr, None)
            self.feedback.report(Report(pr, phase, _now(), error=outcome.error, reason=why))
            return
        state = self.gateway.state_of(pr)
        url = state.url if state is not None else None
        if outcome.ok and state is not None and state.asleep:
            # GitLab has no comment commands: there a push or the label wakes it.
            wake = "comment `/preview wake` or push to wake it" if self.commands is not None else WAKE_BY_PUSH
            self.feedback.report(Report(pr, Phase.ASLEEP, _now(), pull=pull, url=url, reason=wake))
        elif outcome.ok:
            self.feedback.report(
                Report(pr, Phase.READY, _now(), pull=pull, url=url, **self._cost(pr, state, read=True))
            )
        else:
            self.feedback.report(Report(pr, Phase.FAILED, _now(), pull=pull, url=url, error=outcome.error))

    def _cost(self, pr: int, state: StackState | None, *, read: bool) -> dict[str, Any]:
        """The ``running_since`` and ``reserved`` of a ready report: read from the cluster after an up (``read``,
        one API call, also the gauges), else as last read; nothing when reservations are off."""
        if self.reservations is None or state is None:
            return {}
        if read:
            reserved = self.reservations(state.stack)
            self._reserved[pr] = reserved
            self.metrics.reserved(pr, reserved)
        return {"running_since": state.created_at, "reserved": self._reserved.get(pr)}


def _now() -> datetime:
    return datetime.now(UTC)
