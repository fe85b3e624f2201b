"""Idle preview environments sleep: their workloads scale to zero while the namespace, Services, Ingress, database
branch and secrets stay, so waking one is a quick up instead of a new environment (Okteto sleeps after 1 h).

Sleeping is a desired state, not a side channel: a PR whose environment should sleep is reported with
``PullRequest.asleep``; the driver writes it as ``prenv:asleep`` and the program (stacks/preview.py) sets every
Deployment and StatefulSet to 0 replicas. The config hash the stack records carries it (prenv.stackconfig.sleep_hash),
so an unchanged sleeping PR costs no pulumi run, and the state survives restarts: it is read back from the stack.

The rule (pure, table-tested in tests/unit/test_sleep.py), first match wins:

* no environment yet: awake (a new environment starts awake);
* a push not deployed yet (the PR's sha differs from the stack's): awake; a push wakes it;
* labelled ``preview/awake``: awake, whatever else; adding the label wakes it (in ``prenv sync`` too: it is read from
  the PR, not remembered);
* a command (``/preview sleep`` or ``/preview wake``) not yet carried out: what it asked for. It is forgotten once the
  stack shows it, or at a push;
* the stack sleeps: it stays asleep (its last deployment, the one that put it to sleep, is no activity);
* the template's ``prenv:sleepAfter`` passed since the stack's last deployment (its creation, a push, a template change
  or a wake): asleep; otherwise, or without ``prenv:sleepAfter``: awake.

``SleepSource`` wraps any source and applies the rule; prenv.driver puts it between the TTL wrapper and the real
source, for ``prenv serve`` and ``prenv sync`` alike.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from prenv.errors import PrenvError, SourceUnavailable
from prenv.model import PullRequest, StackState
from prenv.sources.base import PullRequestSource

logger = logging.getLogger(__name__)

AWAKE_LABEL = "preview/awake"


class Request(enum.StrEnum):
    """What a command asked for."""

    SLEEP = "sleep"
    WAKE = "wake"


@dataclass(frozen=True, slots=True)
class SleepPolicy:
    """When environments sleep: ``after`` without a push (None: never by time); ``awake_label`` keeps one awake."""

    after: timedelta | None = None
    awake_label: str = AWAKE_LABEL


@dataclass(frozen=True, slots=True)
class SleepDecision:
    """The sleep decision for one PR; ``sleeps_at`` is when an awake one will sleep (None: not by time)."""

    pr: int
    asleep: bool
    reason: str
    sleeps_at: datetime | None = None


def decide(
    pr: PullRequest,
    stack: StackState | None,
    now: datetime,
    policy: SleepPolicy = SleepPolicy(),
    request: Request | None = None,
) -> SleepDecision:
    """Whether ``pr``'s environment should sleep at ``now`` (see the module docstring for the rule).

    Args:
        pr: the open PR as the source reports it.
        stack: its stack, or None when it has none.
        now: an aware datetime.
        policy: how long an environment may idle, and the label that keeps it awake.
        request: a ``/preview sleep`` or ``/preview wake`` not carried out yet.
    """
    if stack is None:
        return SleepDecision(pr.number, False, "no environment yet")
    if stack.sha != pr.sha:
        return SleepDecision(pr.number, False, "a push wakes it")
    if policy.awake_label in pr.labels:
        return SleepDecision(pr.number, False, f"labelled {policy.awake_label}")
    if request is not None:
        return SleepDecision(pr.number, request is Request.SLEEP, f"/preview {request.value}")
    if stack.asleep:
        return SleepDecision(pr.number, True, "asleep; a push or /preview wake wakes it")
    if policy.after is None:
        return SleepDecision(pr.number, False, "no prenv:sleepAfter")
    anchors = [_aware(t) for t in (stack.created_at, stack.last_update) if t is not None]
    if not anchors:
        return SleepDecision(pr.number, False, "no deployment time known")
    sleeps_at = max(anchors) + policy.after
    if now >= sleeps_at:
        return SleepDecision(pr.number, True, f"no push for {_human(policy.after)}")
    return SleepDecision(pr.number, False, f"sleeps after {_human(policy.after)} without a push", sleeps_at)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _human(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours // 24}d" if hours % 24 == 0 and hours >= 24 else f"{hours}h"


class SleepSource:
    """A ``PullRequestSource`` that marks the PRs whose environment should sleep (``PullRequest.asleep``).

    Args:
        inner: the real source.
        stacks: lists the current stacks (the gateway's ``list_stacks``): their sha, last deployment and state.
        policy: when environments sleep.
        clock: the current time, aware.
    """

    def __init__(
        self,
        inner: PullRequestSource,
        stacks: Callable[[], Iterable[StackState]],
        policy: SleepPolicy = SleepPolicy(),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.inner = inner
        self._stacks = stacks
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: dict[int, Request] = {}
        self._listed: list[StackState] | None = None

    def __repr__(self) -> str:
        return f"SleepSource({self.inner!r})"

    def request(self, pr: int, what: Request) -> None:
        """Remember a ``/preview sleep`` or ``/preview wake`` (or a label change: wake) until the stack shows it."""
        with self._lock:
            self._requests[pr] = what

    def listed(self) -> list[StackState]:
        """The stacks the latest ``list_open`` read: a wrapper over this source (the TTL's) decides on the same listing
        instead of reading every checkpoint again; the real listing before the first ``list_open``."""
        with self._lock:
            listed = self._listed
        return list(listed) if listed is not None else list(self._stacks())

    def pending(self, pr: int) -> Request | None:
        """The command for ``pr`` not carried out yet, if any."""
        with self._lock:
            return self._requests.get(pr)

    def list_open(self) -> list[PullRequest]:
        prs = self.inner.list_open()
        try:
            listing = list(self._stacks())
        except PrenvError as e:
            # Without the stacks, an awake PR would be reported as such and a sleeping one woken: decide nothing.
            raise SourceUnavailable("cannot list stacks to decide which environments sleep") from e
        stacks = {s.pr: s for s in listing}
        now = self._clock()
        out: list[PullRequest] = []
        with self._lock:
            self._listed = listing
            open_numbers = {pr.number for pr in prs}
            for number in [n for n in self._requests if n not in open_numbers]:
                del self._requests[number]
            for pr in prs:
                stack = stacks.get(pr.number)
                asked = self._requests.get(pr.number)
                if asked is not None and (
                    stack is None or stack.sha != pr.sha or stack.asleep == (asked is Request.SLEEP)
                ):
                    del self._requests[pr.number]  # carried out, or overtaken by a push
                    asked = None
                verdict = decide(pr, stack, now, self.policy, asked)
                if verdict.asleep and stack is not None and not stack.asleep:
                    logger.info("PR %s: environment goes to sleep (%s)", pr.number, verdict.reason)
                out.append(replace(pr, asleep=verdict.asleep) if verdict.asleep else pr)
        return out
