"""What a PR comment asks prenv to do, decided without I/O: ``/preview``, ``/preview destroy``, ``/preview keep``...

Kept free of HTTP and GitHub calls so the rules are table-tested on their own (tests/unit/test_service_commands.py);
prenv.service.command_actions carries them out.

* A command is a comment whose whole text (surrounding blank space aside) is ``/preview`` or ``/preview <verb>``
  with a known verb. A comment that merely starts with ``/preview`` but says more (``/preview please``,
  ``/preview destroy`` and a second line, ``/preview nuke``) is an unknown command: it is answered, never acted on.
  Anything else (``/previews``, text that mentions ``/preview`` later on) is no command at all.
* Only new comments count (``action: created``): an edited or deleted comment does nothing, so editing old text into
  a command cannot approve the commit of the moment.
* Only comments on pull requests count; an issue's comment (no ``issue.pull_request``) is ignored.
* Who may command is decided later, from ``author_association``, which the payload carries.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

COMMAND = "/preview"
_MAX_BODY = 1000  # a command is short; a long comment that starts with /preview is answered as unknown
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


class Verb(enum.StrEnum):
    DEPLOY = "deploy"
    DESTROY = "destroy"
    KEEP = "keep"
    SLEEP = "sleep"
    WAKE = "wake"
    UNKNOWN = "unknown"


_VERBS = {v.value: v for v in (Verb.DESTROY, Verb.KEEP, Verb.SLEEP, Verb.WAKE)}
USAGE = "`/preview`, `/preview destroy`, `/preview keep`"


def parse(body: str) -> Verb | None:
    """The verb of a comment, ``Verb.UNKNOWN`` for a malformed ``/preview`` command, None for no command."""
    text = body.strip()
    first = text.split(None, 1)[0] if text else ""
    if first != COMMAND:
        return None
    if len(text) > _MAX_BODY or "\n" in text or "\r" in text:
        return Verb.UNKNOWN
    words = text.split()
    if len(words) == 1:
        return Verb.DEPLOY
    if len(words) == 2 and words[1] in _VERBS:
        return _VERBS[words[1]]
    return Verb.UNKNOWN


@dataclass(frozen=True, slots=True)
class Command:
    """One ``/preview`` comment on PR ``pr``, as the webhook reported it (re-checked against GitHub before acting)."""

    pr: int
    verb: Verb
    comment: int
    """The comment's id: a replay of the same comment is recognised by it."""
    body: str
    login: str
    association: str
    """GitHub's ``author_association`` of the commenter (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE...)."""


class Ignored(enum.StrEnum):
    """Why a comment event does nothing (the webhook's ``reason``)."""

    NOT_CREATED = "comment-edited-or-deleted"
    NOT_A_PULL_REQUEST = "issue-not-pull-request"
    NOT_A_COMMAND = "not-a-command"
    FROM_A_BOT = "from-a-bot"


def command_of(payload: dict[str, Any]) -> Command | Ignored | None:
    """The command an ``issue_comment`` payload carries, why it carries none, or None when it is malformed."""
    if payload.get("action") != "created":
        return Ignored.NOT_CREATED
    issue, comment = payload.get("issue"), payload.get("comment")
    if not isinstance(issue, dict) or not isinstance(comment, dict):
        return None
    if not isinstance(issue.get("pull_request"), dict):
        return Ignored.NOT_A_PULL_REQUEST
    body = comment.get("body")
    verb = parse(body) if isinstance(body, str) else None
    if verb is None:
        return Ignored.NOT_A_COMMAND
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    if isinstance(user, dict) and user.get("type") == "Bot":
        return Ignored.FROM_A_BOT
    number, comment_id, association = issue.get("number"), comment.get("id"), comment.get("author_association")
    if not _positive(number, 2**31) or not _positive(comment_id, 2**63):
        return None
    if not isinstance(login, str) or not _LOGIN.fullmatch(login) or not isinstance(association, str):
        return None
    assert isinstance(body, str) and isinstance(number, int) and isinstance(comment_id, int)
    return Command(number, verb, comment_id, body, login, association.upper())


def _positive(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < limit
