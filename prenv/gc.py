"""``prenv gc``: find (and with ``--apply`` remove) what a crash or a manual mistake left without a stack.

Orphans are things prenv made whose stack is gone — no record of them remains, so no destroy will ever reach them:

- namespaces labelled ``prenv.dev/managed-by=prenv`` with a ``prenv.dev/pr`` label and no ``pr-<n>`` stack;
- ``<prefix><n>`` databases and roles on the shared server with no ``pr-<n>`` stack;
- stale stacks: a ``pr-<n>`` stack whose PR is no longer open (listed only when the PR source answered).

Everything is matched by number, so a branch environment (stack ``br-<slug>-<digits>``, namespace labelled with its
number ``9xxxxxxxx``, database ``<prefix>9xxxxxxxx``) is judged the same way (prenv.naming).

``prenv gc --expired`` instead lists the environments of open PRs past their TTL (prenv.ttl's rule, the same as
``prenv serve`` and ``prenv sync`` apply), and destroys them with ``--apply``.

Deciding is pure (``find_orphans``, ``find_expired``); collecting and applying talk to the cluster, PostgreSQL and
the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prenv import naming
from prenv.model import PullRequest, StackState
from prenv.ttl import Expiry, TtlPolicy, expiry_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Orphans:
    namespaces: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    stale_stacks: tuple[int, ...] = ()

    def empty(self) -> bool:
        return not (self.namespaces or self.databases or self.roles or self.stale_stacks)

    def as_dict(self) -> dict[str, list[str] | list[int]]:
        return {
            "namespaces": list(self.namespaces),
            "databases": list(self.databases),
            "roles": list(self.roles),
            "stale_stacks": list(self.stale_stacks),
        }


@dataclass(frozen=True, slots=True)
class Inventory:
    """What exists: stack PRs, prenv namespaces (name → PR label), databases, roles, open PRs (None: unknown)."""

    stacks: frozenset[int]
    namespaces: dict[str, int | None] = field(default_factory=dict)
    databases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    open_prs: frozenset[int] | None = None


def find_orphans(inv: Inventory, db_prefix: str) -> Orphans:
    def pr_of_db(name: str) -> int | None:
        rest = name[len(db_prefix) :]
        return int(rest) if name.startswith(db_prefix) and rest.isdigit() else None

    namespaces = sorted(ns for ns, pr in inv.namespaces.items() if pr is not None and pr not in inv.stacks)
    dbs = sorted(d for d in inv.databases if (p := pr_of_db(d)) is not None and p not in inv.stacks)
    roles = sorted(r for r in inv.roles if (p := pr_of_db(r)) is not None and p not in inv.stacks)
    stale: list[int] = []
    if inv.open_prs is not None:
        stale = sorted(pr for pr in inv.stacks if pr not in inv.open_prs)
    return Orphans(tuple(namespaces), tuple(dbs), tuple(roles), tuple(stale))


def prenv_namespaces(api: Any) -> dict[str, int | None]:
    """prenv-managed namespaces (``api`` is a kubernetes CoreV1Api) with the PR number from their label, if any."""
    selector = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
    out: dict[str, int | None] = {}
    for ns in api.list_namespace(label_selector=selector).items:
        label = (ns.metadata.labels or {}).get(naming.LABEL_PR, "")
        out[ns.metadata.name] = int(label) if label.isdigit() else None
    return out


def apply(
    orphans: Orphans,
    *,
    core_api: Any | None,
    admin_dsn: str | None,
    destroy_stack: Callable[[int], None] | None = None,
) -> list[str]:
    """Remove the orphans; returns one line per removal. Stale stacks go through the gateway (destroy, then rm)."""
    from prenv import db

    done: list[str] = []
    if orphans.namespaces and core_api is not None:
        for ns in orphans.namespaces:
            core_api.delete_namespace(ns)
            done.append(f"namespace {ns} deleted")
    if admin_dsn is not None:
        for name in sorted(set(orphans.databases) | set(orphans.roles)):
            db.drop_branch(admin_dsn, name)
            done.append(f"database/role {name} dropped")
    if destroy_stack is not None:
        for pr in orphans.stale_stacks:
            destroy_stack(pr)
            done.append(f"stack of PR {pr} destroyed and removed")
    for line in done:
        logger.info("gc: %s", line)
    return done


def find_expired(
    prs: Iterable[PullRequest], stacks: Iterable[StackState], now: datetime, policy: TtlPolicy
) -> list[Expiry]:
    """The expired environments of open PRs (those with a stack), by PR number."""
    by_pr = {s.pr: s for s in stacks}
    verdicts = (expiry_of(pr, by_pr[pr.number], now, policy) for pr in prs if pr.number in by_pr)
    return sorted((v for v in verdicts if v.expired), key=lambda v: v.pr)
