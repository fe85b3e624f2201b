"""Turn raw source records (dicts from YAML, JSON, GitHub or PostgreSQL) into validated ``PullRequest`` records.

Every source feeds its raw records through :func:`parse_records`, so that every source rejects the same bad input
in the same way. Source data is attacker-controlled (anyone can open a PR with any title or branch name): a
malformed record is skipped with a logged reason and never crashes a cycle. The log line names the record by its
PR number when that number is valid, by its position otherwise, and never echoes the offending text itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from prenv import naming
from prenv.errors import ConfigError
from prenv.model import PullRequest

logger = logging.getLogger(__name__)

# Long enough for any real branch name (git allows ~250 bytes in practice) and PR title (GitHub caps at 256);
# anything longer is junk or an attack on log and label budgets.
MAX_TEXT = 1024
# PR numbers feed resource names (``pr-<n>``); GitHub numbers are 32-bit in practice.
MAX_NUMBER = 2**31 - 1

# C0 and C1 control characters and DEL. Tabs and newlines are included: no legitimate branch, title, author or
# label contains them, and they are how log lines and PR comments get forged.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidRecord(ValueError):
    """A raw record cannot become a ``PullRequest``; ``reason`` is safe to log (it never quotes the input)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_record(raw: Mapping[str, object]) -> PullRequest:
    """Validate one raw record and return it as a ``PullRequest``.

    Expected keys follow the file source contract: ``number`` (int > 0), ``sha`` (40 hex), ``branch``, ``base``
    (default ``main``), ``author`` (default empty), ``title`` (default empty), ``labels`` (list of str),
    ``draft`` and ``fork`` (bool, default false), ``updated_at`` (datetime, ISO 8601 text, or absent), and
    ``slug`` (absent or null for a PR; a branch environment's slug, valid only with a branch number).
    Unknown keys are ignored so that producers can add fields.

    Raises:
        InvalidRecord: with a reason that does not quote the input.
    """
    if not isinstance(raw, Mapping):
        raise InvalidRecord("record is not an object")
    number = _number(raw.get("number"))
    sha = raw.get("sha")
    if sha is None:
        raise InvalidRecord("sha is missing")
    if not isinstance(sha, str):
        raise InvalidRecord("sha must be a string (quote it in YAML)")
    try:
        sha = naming.check_sha(sha, full=True)
    except ConfigError:
        raise InvalidRecord("sha is not 40 hexadecimal characters") from None
    labels = raw.get("labels", ())
    if labels is None:
        labels = ()
    if isinstance(labels, str | bytes | Mapping) or not isinstance(labels, Iterable):
        raise InvalidRecord("labels must be a list of strings")
    label_set = frozenset(_text(f"label {i}", value, required=True) for i, value in enumerate(labels))
    return PullRequest(
        number=number,
        sha=sha,
        branch=_text("branch", raw.get("branch"), required=True),
        base=_text("base", raw.get("base", "main"), required=True),
        author=_text("author", raw.get("author", "")),
        title=_text("title", raw.get("title", "")),
        labels=label_set,
        draft=_flag("draft", raw.get("draft", False)),
        fork=_flag("fork", raw.get("fork", False)),
        updated_at=_timestamp(raw.get("updated_at")),
        slug=_slug(number, raw.get("slug")),
    )


def parse_records(raws: Iterable[object], *, source: str) -> list[PullRequest]:
    """Validate every raw record, skipping (and logging) the malformed ones and later duplicates of a number.

    The first record with a given number wins: a listing that pages through a changing PR list can see the same
    PR twice, and the first sighting is as good as the second.

    Args:
        raws: raw records, in source order.
        source: a short name of the source for log lines (``github``, ``file``...), never the input itself.

    Returns:
        The valid records, in source order.
    """
    seen: set[int] = set()
    result: list[PullRequest] = []
    for index, raw in enumerate(raws):
        try:
            if not isinstance(raw, Mapping):
                raise InvalidRecord("record is not an object")
            pr = parse_record(raw)
        except InvalidRecord as e:
            logger.warning("%s: skipping %s: %s", source, _describe(raw, index), e.reason)
            continue
        if pr.number in seen:
            logger.warning("%s: skipping PR #%d: duplicate number (the first record wins)", source, pr.number)
            continue
        seen.add(pr.number)
        result.append(pr)
    return result


def as_record(pr: PullRequest) -> dict[str, object]:
    """A ``PullRequest`` as the raw record every source reads (labels sorted), e.g. for a table row; ``slug`` only
    when set (a branch environment)."""
    record: dict[str, object] = {
        "number": pr.number,
        "sha": pr.sha,
        "branch": pr.branch,
        "base": pr.base,
        "author": pr.author,
        "title": pr.title,
        "labels": sorted(pr.labels),
        "draft": pr.draft,
        "fork": pr.fork,
        "updated_at": pr.updated_at,
    }
    if pr.slug is not None:
        record["slug"] = pr.slug
    return record


def validate(pr: PullRequest) -> PullRequest:
    """Re-check a ``PullRequest`` built elsewhere (e.g. by CI before it is written to a table)."""
    return parse_record(as_record(pr))


def _describe(raw: object, index: int) -> str:
    """Name a record for a log line: by PR number when it is a valid one, else by position."""
    if isinstance(raw, Mapping):
        try:
            return f"PR #{_number(raw.get('number'))}"
        except InvalidRecord:
            pass
    return f"record {index} (no valid number)"


def _number(value: object) -> int:
    # bool is an int subclass; `true` is never a PR number.
    if value is None:
        raise InvalidRecord("number is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord("number is not an integer")
    if value <= 0:
        raise InvalidRecord("number is not positive")
    if value > MAX_NUMBER:
        raise InvalidRecord("number is too large")
    return value


def _text(field: str, value: object, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise InvalidRecord(f"{field} is missing")
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(f"{field} is not a string")
    if required and not value:
        raise InvalidRecord(f"{field} is empty")
    if len(value) > MAX_TEXT:
        raise InvalidRecord(f"{field} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise InvalidRecord(f"{field} contains control characters")
    return value


def _slug(number: int, value: object) -> str | None:
    """A branch environment's slug: it feeds names, so it must be exactly what ``naming.branch_slug`` gives."""
    if value is None:
        return None
    if not naming.is_branch_number(number):
        raise InvalidRecord("slug is set but the number is not a branch environment's")
    try:
        return naming.check_slug(value)
    except ConfigError:
        raise InvalidRecord("slug is not a branch slug (a-z and 0-9 runs joined by '-')") from None


def _flag(field: str, value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRecord(f"{field} is not a boolean")
    return value


def _timestamp(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        if len(value) > 64:
            raise InvalidRecord("updated_at is not an ISO 8601 timestamp")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRecord("updated_at is not an ISO 8601 timestamp") from None
    else:
        raise InvalidRecord("updated_at is not a timestamp")
    # Naive timestamps are taken as UTC so that records from every source compare.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
