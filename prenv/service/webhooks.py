"""What a GitHub webhook delivery means for prenv, decided without I/O: authentic? seen before? which PR?

Kept free of HTTP so the rules are testable on their own and the ASGI layer (prenv.service.app) only moves bytes.

* Authenticity: ``X-Hub-Signature-256`` is ``sha256=`` + the hex HMAC-SHA256 of the raw body under the shared
  secret, compared in constant time. Nothing else is looked at before it passes.
* Redeliveries: GitHub retries and users press "Redeliver"; the same ``X-GitHub-Delivery`` id is acted on once.
  The memory is a bounded LRU, so a flood of deliveries costs bounded memory.
* Meaning: a ``pull_request`` event with an action that can change an environment names one PR to reconcile
  (``edited`` included: a new title or base branch can flip a filter, and waiting for the resync would be late);
  an ``issue_comment`` that is a ``/preview`` command names a command (prenv.service.commands);
  when the source lists branches (``github-branches``), a ``push`` to a branch names that branch's environment
  (``prenv.naming.branch_number``) instead, and pull requests are ignored; everything else is acknowledged and
  ignored. The payload only picks *which* PR to look at: the reconcile reads
  the PR's state from the source, never from the (possibly stale) payload.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from prenv import naming
from prenv.service.commands import Command, command_of

SIGNATURE_PREFIX = "sha256="
PR_ACTIONS = frozenset(
    {
        "opened",
        "reopened",
        "synchronize",
        "labeled",
        "unlabeled",
        "closed",
        "ready_for_review",
        "converted_to_draft",
        "edited",
    }
)
KNOWN_EVENTS = frozenset({"pull_request", "ping", "push", "issue_comment"})
_BRANCH_REF = "refs/heads/"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (used by tests and tools)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the valid signature of ``body``. Never raises."""
    if not secret or not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = sign(secret, body)
    # compare_digest on bytes accepts any content; on str it rejects non-ASCII, which an attacker controls.
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


class DeliveryLog:
    """The most recent delivery ids, oldest forgotten first. Thread-safe."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = max(1, capacity)
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        """Record ``delivery``; False when it was already recorded (a redelivery)."""
        with self._lock:
            if delivery in self._ids:
                self._ids.move_to_end(delivery)
                return False
            self._ids[delivery] = None
            if len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


class Verdict(enum.StrEnum):
    RECONCILE = "accepted"
    COMMAND = "command"
    PONG = "pong"
    IGNORED = "ignored"
    OTHER_REPOSITORY = "other-repository"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one authentic delivery. ``pr`` is set for RECONCILE and COMMAND; ``action`` is the PR action;
    ``command`` is set for COMMAND; ``reason`` says why an IGNORED comment does nothing."""

    verdict: Verdict
    pr: int | None = None
    action: str | None = None
    command: Command | None = None
    reason: str | None = None


def event_label(event: str | None) -> str:
    """The event name as a metrics label: known names only, so a sender cannot grow the label set."""
    return event if event in KNOWN_EVENTS else "other"


def decide(event: str | None, payload: object, repository: str | None, *, branches: bool = False) -> Decision:
    """Classify an authentic delivery.

    Args:
        event: the ``X-GitHub-Event`` header.
        payload: the parsed JSON body.
        repository: the ``owner/name`` whose PRs we serve (case-insensitive), or None to accept any.
        branches: the source lists branches: ``push`` events count, ``pull_request`` events do not.
    """
    if event == "ping":
        return Decision(Verdict.PONG)
    if event == "issue_comment" and not branches:
        return _comment(payload, repository)
    if event != ("push" if branches else "pull_request"):
        return Decision(Verdict.IGNORED)
    if not isinstance(payload, dict):
        return Decision(Verdict.MALFORMED)
    if branches:
        return _push(payload, repository)
    action = payload.get("action")
    if not isinstance(action, str) or action not in PR_ACTIONS:
        return Decision(Verdict.IGNORED)
    if repository is not None and _full_name(payload).lower() != repository.lower():
        return Decision(Verdict.OTHER_REPOSITORY, action=action)
    number = payload.get("number")
    if number is None and isinstance(payload.get("pull_request"), dict):
        number = payload["pull_request"].get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**31:
        return Decision(Verdict.MALFORMED, action=action)
    return Decision(Verdict.RECONCILE, pr=number, action=action)


def _comment(payload: object, repository: str | None) -> Decision:
    """A comment on an issue or PR: a ``/preview`` command, or nothing."""
    if not isinstance(payload, dict):
        return Decision(Verdict.MALFORMED)
    if repository is not None and _full_name(payload).lower() != repository.lower():
        return Decision(Verdict.OTHER_REPOSITORY, action="comment")
    found = command_of(payload)
    if found is None:
        return Decision(Verdict.MALFORMED, action="comment")
    if not isinstance(found, Command):
        return Decision(Verdict.IGNORED, action="comment", reason=found.value)
    return Decision(Verdict.COMMAND, pr=found.pr, action="comment", command=found)


def _push(payload: dict[str, Any], repository: str | None) -> Decision:
    """A push to a branch (created, moved or deleted); tags are ignored."""
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith(_BRANCH_REF) or len(ref) > 1024:
        return Decision(Verdict.IGNORED)
    action = "branch-deleted" if payload.get("deleted") is True else "pushed"
    if repository is not None and _full_name(payload).lower() != repository.lower():
        return Decision(Verdict.OTHER_REPOSITORY, action=action)
    branch = ref[len(_BRANCH_REF) :]
    if not branch:
        return Decision(Verdict.MALFORMED, action=action)
    return Decision(Verdict.RECONCILE, pr=naming.branch_number(branch), action=action)


def _full_name(payload: dict[str, Any]) -> str:
    repo = payload.get("repository")
    name = repo.get("full_name") if isinstance(repo, dict) else None
    return name if isinstance(name, str) else ""
