"""Preview environments expire: a forgotten PR should not keep a namespace, pods and a database alive for weeks.

Shared by ``prenv serve``, ``prenv sync`` and ``prenv gc --expired`` (prenv.driver builds the policy), so every way of
running prenv expires the same environments. The rule (pure, table-tested in tests/unit/test_service_ttl.py):

* A PR labelled ``preview/keep`` never expires.
* Its TTL is ``preview/ttl-<N>h`` or ``preview/ttl-<N>d`` when such a label is present (the longest one wins when
  there are several; a malformed one is ignored), else the default: the template's ``prenv:ttl`` (48h in
  Pulumi.preview.yaml), unless ``serve.ttl.default_hours`` is set in prenv.yaml.
* The TTL counts from the *last push*: for a PR with an environment, the later of the stack's creation and its last
  deployment (``StackState.created_at`` / ``last_update``: a deployment runs for a new commit, or a changed template);
  a PR whose head commit is not deployed yet (a push just arrived) also counts from its last activity
  (``PullRequest.updated_at``). Comments and label changes on a deployed PR do not extend it (prenv's own PR comment
  would, otherwise, at every deployment). A PR without an environment counts from its last activity. With no time
  known, the PR never expires.
* An expired PR stays expired while its head sha and its labels are unchanged, even though tearing it down (and
  telling the PR so in a comment) may bump ``updated_at``. A push or a label change brings it back; it then gets a
  fresh environment whose TTL counts from that moment. This memory lives in the process (``prenv serve``): after a
  restart, or in the next ``prenv sync``, an expired PR whose ``updated_at`` is recent again gets one more
  environment.

Expired PRs are removed from what the source reports (``TtlSource`` wraps any source), so the reconciler destroys
their stacks like those of closed PRs and never recreates them; the reconciler itself knows nothing of TTLs.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prenv.errors import PrenvError, SourceUnavailable
from prenv.model import PullRequest, StackState
from prenv.sources.base import PullRequestSource

logger = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(hours=48)
KEEP_LABEL = "preview/keep"
TTL_LABEL_PREFIX = "preview/ttl-"
# Up to 4 digits: a TTL of 9999 days is already "forever"; longer numbers would overflow timedelta.
_TTL_VALUE = re.compile(r"([1-9][0-9]{0,3})([hd])")


@dataclass(frozen=True, slots=True)
class TtlPolicy:
    """How long environments live: the default TTL and the labels that change it."""

    default: timedelta = DEFAULT_TTL
    keep_label: str = KEEP_LABEL
    label_prefix: str = TTL_LABEL_PREFIX


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What must change to bring an expired PR back: its head commit or its labels."""

    sha: str
    labels: frozenset[str]

    @classmethod
    def of(cls, pr: PullRequest) -> Fingerprint:
        return cls(pr.sha, pr.labels)


@dataclass(frozen=True, slots=True)
class Expiry:
    """The TTL decision for one PR. ``expires_at`` is None when the PR never expires."""

    pr: int
    expired: bool
    expires_at: datetime | None
    reason: str


def ttl_for(pr: PullRequest, policy: TtlPolicy = TtlPolicy()) -> timedelta | None:
    """The PR's TTL, or None when it is kept forever."""
    if policy.keep_label in pr.labels:
        return None
    prefix = policy.label_prefix
    valid = [
        ttl for label in pr.labels if label.startswith(prefix) and (ttl := _parse_ttl(label[len(prefix) :])) is not None
    ]
    return max(valid) if valid else policy.default


def _parse_ttl(text: str) -> timedelta | None:
    m = _TTL_VALUE.fullmatch(text)
    if m is None:
        return None
    n = int(m.group(1))
    return timedelta(hours=n) if m.group(2) == "h" else timedelta(days=n)


def expiry_of(
    pr: PullRequest,
    stack: StackState | None,
    now: datetime,
    policy: TtlPolicy = TtlPolicy(),
    expired_as: Fingerprint | None = None,
) -> Expiry:
    """Whether ``pr``'s environment has expired at ``now``.

    Args:
        pr: the open PR as the source reports it.
        stack: its stack, or None when it has none (never created, or already torn down).
        now: an aware datetime.
        policy: TTL and labels.
        expired_as: the PR's fingerprint when it last expired, if it did; while unchanged the PR stays expired.
    """
    ttl = ttl_for(pr, policy)
    if ttl is None:
        return Expiry(pr.number, False, None, f"labelled {policy.keep_label}")
    if expired_as is not None and expired_as == Fingerprint.of(pr):
        return Expiry(pr.number, True, None, "expired; no push or label change since")
    if stack is None:
        candidates = [pr.updated_at]
    else:
        pending = stack.sha != pr.sha  # a push not deployed yet counts as activity
        candidates = [stack.created_at, stack.last_update, pr.updated_at if pending else None]
    anchors = [t for t in candidates if t is not None]
    if not anchors:
        return Expiry(pr.number, False, None, "no creation or activity time known")
    expires_at = max(_aware(t) for t in anchors) + ttl
    if now >= expires_at:
        return Expiry(pr.number, True, expires_at, f"no push for {_human(ttl)}")
    return Expiry(pr.number, False, expires_at, f"expires after {_human(ttl)} without a push")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``48h`` or ``7d`` (the template's ``prenv:ttl``) as a timedelta; None when malformed."""
    m = re.fullmatch(r"([1-9][0-9]{0,5})([mhd])", text.strip())
    if m is None:
        return None
    n = int(m.group(1))
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[m.group(2)]


def _human(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours // 24}d" if hours % 24 == 0 and hours >= 24 else f"{hours}h"


class TtlSource:
    """A ``PullRequestSource`` that hides expired PRs of the source it wraps, so their stacks are destroyed.

    Args:
        inner: the real source.
        stacks: lists the current stacks (the gateway's ``list_stacks``) for their creation times.
        policy: TTL and labels.
        clock: the current time, aware.
        on_expire: called once each time a PR with a stack expires (to tell the PR why it goes away).
    """

    def __init__(
        self,
        inner: PullRequestSource,
        stacks: Callable[[], Iterable[StackState]],
        policy: TtlPolicy = TtlPolicy(),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_expire: Callable[[PullRequest, Expiry], None] | None = None,
    ) -> None:
        self.inner = inner
        self._stacks = stacks
        self.policy = policy
        self._clock = clock
        self._on_expire = on_expire
        self._lock = threading.Lock()
        self._expired: dict[int, Fingerprint] = {}

    def __repr__(self) -> str:
        return f"TtlSource({self.inner!r})"

    def list_open(self) -> list[PullRequest]:
        prs = self.inner.list_open()
        try:
            stacks = {s.pr: s for s in self._stacks()}
        except PrenvError as e:
            # Without creation times nothing can be decided; a cycle without desired state destroys nothing.
            raise SourceUnavailable("cannot list stacks to apply TTLs") from e
        now = self._clock()
        kept: list[PullRequest] = []
        newly: list[tuple[PullRequest, Expiry]] = []
        with self._lock:
            open_numbers = {pr.number for pr in prs}
            for number in [n for n in self._expired if n not in open_numbers]:
                del self._expired[number]  # closed: nothing to remember
            for pr in prs:
                verdict = expiry_of(pr, stacks.get(pr.number), now, self.policy, self._expired.get(pr.number))
                if not verdict.expired:
                    self._expired.pop(pr.number, None)
                    kept.append(pr)
                    continue
                if pr.number not in self._expired:
                    self._expired[pr.number] = Fingerprint.of(pr)
                    if pr.number in stacks:
                        newly.append((pr, verdict))
        for pr, verdict in newly:
            logger.info("PR %s: environment expired (%s)", pr.number, verdict.reason)
            if self._on_expire is not None:
                self._on_expire(pr, verdict)
        return kept

    def expired(self) -> frozenset[int]:
        """The open PRs currently held back because their environment expired."""
        with self._lock:
            return frozenset(self._expired)
