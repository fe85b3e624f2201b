"""Fork approvals: a maintainer's ``/preview`` lets one commit of a fork's PR be deployed, and the record of it lives
on the PR itself, so it survives restarts and every replica reads the same thing.

Why on the PR: a fork's PR usually has no stack yet when it is approved, and memory does not survive a restart. The
approval is a hidden marker in the reply prenv posts to the command (prenv.service.commands):

    <!-- prenv:approval pr=12 sha=<40 hex> state=approved comment=<command comment id> sig=<hex> -->

``sig`` is the HMAC-SHA256, under the webhook secret, of the repository, PR, sha, state and comment id, so a marker
copied into someone's comment, moved to another PR or repository, or edited, does not verify and is ignored. The
last verified marker of a PR wins: ``state=revoked`` (``/preview destroy``) ends an approval.

:class:`ApprovalSource` wraps a source: a fork's PR whose head commit is approved is reported ``approved=True``
(prenv.filters then keeps it); one whose head moved on after an approval is reported at the approved commit, so its
environment stays as it was, and ``on_awaiting`` is told once per new head (the PR comment says a new approval is
needed). Comments are read only for forks' PRs, once per head sha; an approval recorded here is remembered without
reading them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prenv.model import PullRequest

logger = logging.getLogger(__name__)

State = Literal["approved", "revoked"]
_MARKER = re.compile(
    r"<!-- prenv:approval pr=(?P<pr>[0-9]{1,10}) sha=(?P<sha>[0-9a-f]{40}) state=(?P<state>approved|revoked)"
    r" comment=(?P<comment>[0-9]{1,20}) sig=(?P<sig>[0-9a-f]{64}) -->"
)


@dataclass(frozen=True, slots=True)
class Approval:
    """One verified approval marker."""

    pr: int
    sha: str
    state: State
    comment: int
    """The id of the command comment it answered (a replayed delivery of that comment is recognised by it)."""


def _signature(secret: bytes, repository: str, a: Approval) -> str:
    message = f"{repository.lower()}#{a.pr}:{a.sha}:{a.state}:{a.comment}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def marker(secret: bytes, repository: str, approval: Approval) -> str:
    """The hidden, signed marker recording ``approval`` in a PR comment."""
    a = approval
    sig = _signature(secret, repository, a)
    return f"<!-- prenv:approval pr={a.pr} sha={a.sha} state={a.state} comment={a.comment} sig={sig} -->"


def approvals_in(secret: bytes, repository: str, pr: int, bodies: list[str]) -> list[Approval]:
    """Every verified approval marker for ``pr`` in ``bodies`` (comment bodies, oldest first), in order."""
    found: list[Approval] = []
    for body in bodies:
        for m in _MARKER.finditer(body):
            a = Approval(int(m["pr"]), m["sha"], m["state"], int(m["comment"]))  # type: ignore[arg-type]
            if a.pr != pr:
                continue
            if hmac.compare_digest(m["sig"], _signature(secret, repository, a)):
                found.append(a)
            else:
                logger.warning("PR %s: an approval marker with a bad signature is ignored", pr)
    return found


def latest(approvals: list[Approval]) -> Approval | None:
    """The approval in force: the last one recorded."""
    return approvals[-1] if approvals else None


class ApprovalSource:
    """A ``PullRequestSource`` that reports forks' PRs as approved (or held at their approved commit).

    Args:
        inner: the real source; it must have ``comment_bodies(number) -> list[str]`` (``GitHubSource`` does).
        repository: ``owner/name``, part of what markers sign.
        secret: the webhook secret, the HMAC key of the markers.
        on_awaiting: called once per new head commit of a fork's PR that was approved for an earlier commit, with
            the PR at its head and the approved sha.
    """

    def __init__(
        self,
        inner: Any,
        repository: str,
        secret: bytes,
        *,
        on_awaiting: Callable[[PullRequest, str], None] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("fork approvals need a signing secret")
        self.inner = inner
        self.repository = repository
        self._secret = secret
        self._on_awaiting = on_awaiting
        self._lock = threading.Lock()
        self._known: dict[int, tuple[str, Approval | None]] = {}  # PR -> (head sha when read, approval in force)
        self._told: dict[int, str] = {}  # PR -> head sha whose "awaiting approval" was told

    def __repr__(self) -> str:
        return f"ApprovalSource({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        # The wrapped source's other readings (rate_limit, changed_files, close) stay reachable.
        return getattr(self.inner, name)

    def record(self, head: str, approval: Approval) -> None:
        """Remember an approval (or revocation) just written to PR ``approval.pr`` whose head is ``head``."""
        with self._lock:
            self._known[approval.pr] = (head, approval)

    def approval_of(self, pr: PullRequest) -> Approval | None:
        """The approval in force for a fork's PR (reads its comments when its head changed since the last read).

        Raises:
            SourceUnavailable, SourceError: the comments could not be read.
        """
        with self._lock:
            known = self._known.get(pr.number)
        if known is not None and known[0] == pr.sha:
            return known[1]
        if known is not None and known[1] is not None and known[1].state == "approved" and known[1].sha != pr.sha:
            # A push after an approval: the record cannot have changed in between without passing through record().
            return self._remember(pr, known[1])
        found = latest(approvals_in(self._secret, self.repository, pr.number, self.inner.comment_bodies(pr.number)))
        return self._remember(pr, found)

    def _remember(self, pr: PullRequest, approval: Approval | None) -> Approval | None:
        with self._lock:
            self._known[pr.number] = (pr.sha, approval)
        return approval

    def list_open(self) -> list[PullRequest]:
        prs = self.inner.list_open()
        out: list[PullRequest] = []
        awaiting: list[tuple[PullRequest, str]] = []
        for pr in prs:
            if not pr.fork:
                out.append(pr)
                continue
            approval = self.approval_of(pr)
            if approval is None or approval.state != "approved":
                out.append(pr)
            elif approval.sha == pr.sha:
                out.append(dataclasses.replace(pr, approved=True))
            else:
                out.append(dataclasses.replace(pr, sha=approval.sha, approved=True))
                with self._lock:
                    first = self._told.get(pr.number) != pr.sha
                    self._told[pr.number] = pr.sha
                if first:
                    awaiting.append((pr, approval.sha))
        with self._lock:
            open_numbers = {pr.number for pr in prs}
            for number in [n for n in self._known if n not in open_numbers]:
                self._known.pop(number, None)
                self._told.pop(number, None)
        for pr, approved in awaiting:
            logger.info("PR %s: head moved past its approved commit; waiting for a new approval", pr.number)
            if self._on_awaiting is not None:
                self._on_awaiting(pr, approved)
        return out
