"""Typed records that cross module boundaries: what a PR source yields, what the reconciler plans, what a stack holds.

Raw vendor objects (PyGithub objects, psycopg rows, Automation API summaries) never travel past the module that
fetched them; they are turned into these records first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull request as every source reports it. Only ``number`` and ``slug`` ever feed a resource name.

    ``slug`` is set by the branch sources only: a branch environment's readable name part, derived from the branch
    name by :func:`prenv.naming.branch_slug` and validated (``[a-z0-9]`` runs joined by ``-``); None for a PR.
    """

    number: int
    sha: str
    branch: str
    base: str
    author: str
    title: str
    labels: frozenset[str] = frozenset()
    draft: bool = False
    fork: bool = False
    updated_at: datetime | None = None
    slug: str | None = None
    """A branch environment's slug (branch sources only; see above)."""
    approved: bool = False
    """A fork's PR whose commit ``sha`` a maintainer approved with ``/preview`` (prenv.sources.approvals)."""
    asleep: bool = False
    """Its environment should sleep: workloads at zero replicas, the rest kept (prenv.sleep decides)."""


ASLEEP_SUFFIX = "-asleep"
"""Appended to the config hash of an environment that sleeps, so a sleeping PR is a desired state of its own: an
unchanged sleeping PR costs no pulumi run, and waking it is an update."""


class EnvStatus(enum.StrEnum):
    """Status of one preview environment, as ``prenv list`` reports it."""

    READY = "ready"
    UPDATING = "updating"
    FAILED = "failed"
    DESTROYING = "destroying"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class DesiredEnvironment:
    """A PR that passed the filters, with the config hash its stack should be deployed with."""

    pr: PullRequest
    config_hash: str
    image_ready: bool = True


@dataclass(frozen=True, slots=True)
class StackState:
    """What the backend knows of one ``pr-<n>`` (or branch ``br-<slug>-<digits>``) stack: the deployed sha and
    config hash recorded on it. ``pr`` is the environment's number, parsed from the stack name."""

    pr: int
    stack: str
    sha: str | None
    config_hash: str | None
    url: str | None = None
    last_update: datetime | None = None
    created_at: datetime | None = None
    result: str | None = None  # "succeeded" | "failed" | "in-progress" | None (never deployed)
    last_kind: str | None = None  # what the last recorded run was: "update", "destroy", "refresh"… (None: unknown)
    error: str | None = None

    @property
    def asleep(self) -> bool:
        """Its last up put the environment to sleep (the config hash says so: prenv.stackconfig.sleep_hash)."""
        return self.config_hash is not None and self.config_hash.endswith(ASLEEP_SUFFIX)


@dataclass(frozen=True, slots=True)
class Drift:
    """What a drift check found in one environment: how far the cluster has moved from what its last up left.

    ``changes`` counts what ``pulumi preview --refresh`` would do to put it back, per operation (``create``: an
    object deleted in the cluster; ``update``: one changed; ``delete``: …); empty when nothing drifted. ``healed``:
    an ``up --refresh`` put it back.
    """

    pr: int
    stack: str
    changes: dict[str, int]
    at: datetime
    healed: bool = False

    @property
    def drifted(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        """``none``, or e.g. ``1 to create, 2 to update (healed)``."""
        if not self.changes:
            return "none"
        text = ", ".join(f"{n} to {op}" for op, n in sorted(self.changes.items()))
        return f"{text} (healed)" if self.healed else text


class ActionKind(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DESTROY = "destroy"
    UNCHANGED = "unchanged"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan: what to do with the stack of PR ``pr`` and why."""

    kind: ActionKind
    pr: int
    reason: str
    desired: DesiredEnvironment | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The reconciler's decision for one cycle."""

    actions: tuple[Action, ...] = field(default_factory=tuple)

    def of(self, kind: ActionKind) -> list[int]:
        return sorted(a.pr for a in self.actions if a.kind is kind)

    def as_dict(self) -> dict[str, list[int]]:
        """The ``prenv sync --dry-run --json`` contract."""
        return {
            k.value: self.of(k)
            for k in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DESTROY, ActionKind.UNCHANGED)
        }
