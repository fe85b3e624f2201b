"""Branches as environments: what the GitHub and GitLab branch sources share.

A long-lived branch (``release/*``) gets an environment like a PR does, so it travels through the same records,
filters and reconciler as a PR. What stands in for the PR number is ``prenv.naming.branch_number(name)``, a hash of
the name, and the record's ``slug`` (``prenv.naming.branch_slug(name)``: ``[a-z0-9]`` runs joined by ``-``) makes
its names readable (stack ``br-<slug>-<digits>``); the name itself is attacker-controlled text and never reaches a
stack, namespace, host or database name.
Which branches get an environment is ``filters.branch_include`` / ``branch_exclude`` (required by the settings for
a branch source); a branch that is deleted or stops matching disappears from the desired state and is destroyed,
with the reconciler's usual safety rules (a failed listing destroys nothing, teardowns are capped per cycle).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prenv import naming
from prenv.model import PullRequest
from prenv.sources.records import parse_records

logger = logging.getLogger(__name__)


def branch_record(name: str, sha: object) -> dict[str, object]:
    """The raw record of branch ``name`` at commit ``sha``: number from the hash, slug from the name, the name as
    branch and base."""
    return {
        "number": naming.branch_number(name),
        "slug": naming.branch_slug(name),
        "sha": sha,
        "branch": name,
        "base": name,
        "title": "",
    }


def branch_records(pairs: Iterable[tuple[object, object]], *, source: str) -> list[PullRequest]:
    """Validated records of ``(name, head sha)`` pairs, sorted by name; malformed entries are skipped and logged.

    Two names with the same number (a hash collision) would share one environment; the first name in sort order
    keeps it and the other is skipped with a warning naming both numbers' owner only by position.
    """
    named = sorted(((name, sha) for name, sha in pairs if isinstance(name, str)), key=lambda pair: pair[0])
    skipped = 0
    raws: list[dict[str, object]] = []
    owners: dict[int, int] = {}
    for index, (name, sha) in enumerate(named):
        record = branch_record(name, sha)
        number = int(str(record["number"]))
        if number in owners:
            logger.warning(
                "%s: skipping branch %d of the listing: its number %d is taken by branch %d (hash collision)",
                source,
                index,
                number,
                owners[number],
            )
            skipped += 1
            continue
        owners[number] = index
        raws.append(record)
    return parse_records(raws, source=source)
