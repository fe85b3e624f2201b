"""Which open PRs get an environment: the rules every source shares, compiled once at start-up.

As in Argo CD's PR generator, filters live outside the providers and a bad regex fails start-up (``ConfigError``
naming its key) instead of failing every cycle. Each dropped PR comes back with a typed reason, so ``prenv`` can
explain why a PR has no environment. Reasons are built from configuration only, never from PR text.

Rules, checked in this order (the first failing rule is the reported reason):

1. drafts are skipped unless ``allow_drafts``;
2. PRs from forks are skipped unless ``allow_forks`` (their code would run with our credentials);
3. every label in ``labels`` must be present;
4. a label in ``skip_labels`` skips the PR when present; ``!label`` skips it when *absent* (the build-gate
   idiom: ``!build/image-ready`` waits until CI has pushed the image);
5. ``base_include``: the target branch must match;
6. ``branch_include`` must match and ``branch_exclude`` must not match the head branch;
7. ``title_exclude`` must not match the title (e.g. ``^WIP``);
8. ``max_environments``: of the PRs left, the lowest numbers are kept.

Regexes use ``re.search`` semantics (anchor with ``^``/``$`` for whole-name matches). The limit keeps the lowest
PR numbers because they are the oldest PRs: a newly opened PR never evicts a running environment. It is the only
deterministic choice that does not depend on timestamps a source may not report.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from prenv.errors import ConfigError
from prenv.model import PullRequest

logger = logging.getLogger(__name__)


class FilterSettings(BaseModel):
    """The ``filters`` section of the configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: tuple[str, ...] = ()
    """Labels a PR must all carry."""
    skip_labels: tuple[str, ...] = ()
    """Labels that skip a PR when present; ``!name`` skips it when ``name`` is absent."""
    branch_include: str | None = None
    """Regex the head branch must match."""
    branch_exclude: str | None = None
    """Regex the head branch must not match."""
    base_include: str | None = None
    """Regex the target (base) branch must match."""
    title_exclude: str | None = None
    """Regex the title must not match."""
    allow_drafts: bool = False
    allow_forks: bool = False
    max_environments: int | None = Field(default=None, ge=0)
    """At most this many environments; the lowest PR numbers win. ``None`` = no limit."""


class DropReason(enum.StrEnum):
    """Why a PR gets no environment."""

    DRAFT = "draft"
    FORK = "fork"
    MISSING_LABEL = "missing-label"
    SKIP_LABEL = "skip-label"
    GATE_LABEL_ABSENT = "gate-label-absent"
    BASE_NOT_INCLUDED = "base-not-included"
    BRANCH_NOT_INCLUDED = "branch-not-included"
    BRANCH_EXCLUDED = "branch-excluded"
    TITLE_EXCLUDED = "title-excluded"
    OVER_LIMIT = "over-limit"


@dataclass(frozen=True, slots=True)
class Dropped:
    """A PR the filters rejected, the rule that rejected it, and a human explanation built from config only."""

    pr: PullRequest
    reason: DropReason
    detail: str


@dataclass(frozen=True, slots=True)
class FilterResult:
    """The PRs that get an environment (sorted by number) and the ones that do not, each with its reason."""

    kept: tuple[PullRequest, ...]
    dropped: tuple[Dropped, ...]


@dataclass(frozen=True, slots=True)
class _LabelRule:
    label: str
    when_absent: bool


class PullRequestFilter:
    """Compiled filters; build with :func:`compile_filters`, apply once per cycle."""

    def __init__(
        self,
        settings: FilterSettings,
        *,
        branch_include: re.Pattern[str] | None,
        branch_exclude: re.Pattern[str] | None,
        base_include: re.Pattern[str] | None,
        title_exclude: re.Pattern[str] | None,
        skip_rules: tuple[_LabelRule, ...],
        key_prefix: str,
    ) -> None:
        self.settings = settings
        self._branch_include = branch_include
        self._branch_exclude = branch_exclude
        self._base_include = base_include
        self._title_exclude = title_exclude
        self._skip_rules = skip_rules
        self._key = key_prefix

    def apply(self, prs: Iterable[PullRequest]) -> FilterResult:
        """Split ``prs`` into kept and dropped. Deterministic: the same input gives the same output."""
        kept: list[PullRequest] = []
        dropped: list[Dropped] = []
        for pr in sorted(prs, key=lambda p: p.number):
            rejection = self._check(pr)
            if rejection is None:
                kept.append(pr)
            else:
                dropped.append(rejection)
        limit = self.settings.max_environments
        if limit is not None and len(kept) > limit:
            for pr in kept[limit:]:
                dropped.append(Dropped(pr, DropReason.OVER_LIMIT, f"{self._key}.max_environments is {limit}"))
            kept = kept[:limit]
        for d in dropped:
            logger.debug("PR #%d dropped: %s (%s)", d.pr.number, d.reason, d.detail)
        dropped.sort(key=lambda d: d.pr.number)
        return FilterResult(kept=tuple(kept), dropped=tuple(dropped))

    __call__ = apply

    def _check(self, pr: PullRequest) -> Dropped | None:
        s, key = self.settings, self._key
        if pr.draft and not s.allow_drafts:
            return Dropped(pr, DropReason.DRAFT, f"draft PRs are skipped ({key}.allow_drafts is false)")
        if pr.fork and not s.allow_forks:
            return Dropped(pr, DropReason.FORK, f"PRs from forks are skipped ({key}.allow_forks is false)")
        for label in s.labels:
            if label not in pr.labels:
                return Dropped(pr, DropReason.MISSING_LABEL, f"missing required label {label!r}")
        for rule in self._skip_rules:
            if rule.when_absent and rule.label not in pr.labels:
                return Dropped(pr, DropReason.GATE_LABEL_ABSENT, f"waiting for label {rule.label!r}")
            if not rule.when_absent and rule.label in pr.labels:
                return Dropped(pr, DropReason.SKIP_LABEL, f"has skip label {rule.label!r}")
        if self._base_include is not None and not self._base_include.search(pr.base):
            return Dropped(pr, DropReason.BASE_NOT_INCLUDED, f"target branch does not match {key}.base_include")
        if self._branch_include is not None and not self._branch_include.search(pr.branch):
            return Dropped(pr, DropReason.BRANCH_NOT_INCLUDED, f"branch does not match {key}.branch_include")
        if self._branch_exclude is not None and self._branch_exclude.search(pr.branch):
            return Dropped(pr, DropReason.BRANCH_EXCLUDED, f"branch matches {key}.branch_exclude")
        if self._title_exclude is not None and self._title_exclude.search(pr.title):
            return Dropped(pr, DropReason.TITLE_EXCLUDED, f"title matches {key}.title_exclude")
        return None


def compile_filters(settings: FilterSettings, *, key_prefix: str = "filters") -> PullRequestFilter:
    """Compile ``settings`` once, at start-up.

    Args:
        settings: the validated filter settings.
        key_prefix: where the settings live in the configuration, for error messages.

    Raises:
        ConfigError: a regex does not compile, or a skip label is empty; the key names the setting
            (``filters.branch_include``, ``filters.skip_labels[1]``...).
    """
    skip_rules: list[_LabelRule] = []
    for i, entry in enumerate(settings.skip_labels):
        negated = entry.startswith("!")
        label = entry[1:] if negated else entry
        if not label:
            raise ConfigError(f"{key_prefix}.skip_labels[{i}]", "empty label")
        skip_rules.append(_LabelRule(label=label, when_absent=negated))
    for i, label in enumerate(settings.labels):
        if not label:
            raise ConfigError(f"{key_prefix}.labels[{i}]", "empty label")
    return PullRequestFilter(
        settings,
        branch_include=_regex(settings.branch_include, f"{key_prefix}.branch_include"),
        branch_exclude=_regex(settings.branch_exclude, f"{key_prefix}.branch_exclude"),
        base_include=_regex(settings.base_include, f"{key_prefix}.base_include"),
        title_exclude=_regex(settings.title_exclude, f"{key_prefix}.title_exclude"),
        skip_rules=tuple(skip_rules),
        key_prefix=key_prefix,
    )


def _regex(pattern: str | None, key: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(key, f"invalid regular expression: {e.msg} at position {e.pos}") from e
