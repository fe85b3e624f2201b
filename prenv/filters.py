"""Which open PRs get an environment: the rules every source shares, compiled once at start-up.

As in Argo CD's PR generator, filters live outside the providers and a bad regex fails start-up (``ConfigError``
naming its key) instead of failing every cycle. Each dropped PR comes back with a typed reason, so ``prenv`` can
explain why a PR has no environment. Reasons are built from configuration only, never from PR text.

Rules, checked in this order (the first failing rule is the reported reason):

1. drafts are skipped unless ``allow_drafts``;
2. PRs from forks are skipped unless ``allow_forks`` (their code would run with our credentials) or a maintainer
   approved the commit with ``/preview`` (``PullRequest.approved``, set by prenv.sources.approvals);
3. every label in ``labels`` must be present;
4. a label in ``skip_labels`` skips the PR when present; ``!label`` skips it when *absent* (the build-gate
   idiom: ``!build/image-ready`` waits until CI has pushed the image);
5. ``base_include``: the target branch must match;
6. ``branch_include`` must match and ``branch_exclude`` must not match the head branch;
7. ``title_exclude`` must not match the title (e.g. ``^WIP``);
8. ``paths_include`` / ``paths_exclude`` (globs) on the PR's changed files: at least one changed file must match an
   include glob, and a PR whose changed files all match exclude globs is skipped (GitHub Actions' ``paths`` and
   ``paths-ignore``). Checked last, so only PRs that passed every other rule cost a listing of their files;
9. ``max_environments``: a cap on live environments, and ``on_limit`` says what happens at the cap (below).

Globs are matched against the whole path: ``*`` and ``?`` stay within one directory, ``**`` spans directories
(``docs/**``, ``**/*.md``), ``[...]`` is a character class.

Regexes use ``re.search`` semantics (anchor with ``^``/``$`` for whole-name matches).

Capacity. Given which PRs have an environment (``deployed``: the reconciler's stacks), a PR that has one keeps it
and the PRs without one form a queue for the free places. The queue is ordered by PR number: a forge numbers PRs as
they are opened, so that is who asked first, known without a request per PR and the same in every cycle and every
replica (a label's time would cost a timeline request per PR and per cycle). When an environment goes, the head of
the queue gets its place in the same cycle. ``on_limit``:

- ``queue`` (default): the rest wait (``OVER_LIMIT``, with their 1-based ``position``);
- ``evict-idle``: for each PR left in the queue, the longest-idle environment (the oldest last deployment: no push
  for the longest time) without the keep label is destroyed to make room (``EVICTED``, naming the PR it made room
  for); a kept one never is, and when all are kept the PR queues. An evicted PR queues and may take a free place,
  but does not evict back until its head commit changes (a push) or :meth:`PullRequestFilter.forgive`
  (``/preview``). The filter remembers evictions for the life of the process (``prenv serve``).

Without ``deployed`` (a caller that does not know the stacks), the lowest numbers are kept.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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
    """At most this many environments. ``None`` = no limit."""
    on_limit: Literal["queue", "evict-idle"] = "queue"
    """At the cap: ``queue`` (a PR waits for a free place, told its position) or ``evict-idle`` (the longest-idle
    environment without the keep label is destroyed to make room)."""
    paths_include: tuple[str, ...] = ()
    """Globs; a PR gets an environment only when one of its changed files matches one."""
    paths_exclude: tuple[str, ...] = ()
    """Globs; a PR whose changed files all match these gets no environment (e.g. ``docs/**``, ``**/*.md``)."""


ChangedFiles = Callable[[PullRequest], Sequence[str]]
"""The paths a PR changes (its source answers, e.g. ``GitHubSource.changed_files``); may raise ``SourceError``."""


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
    PATHS_NOT_INCLUDED = "paths-not-included"
    PATHS_EXCLUDED = "paths-excluded"
    OVER_LIMIT = "over-limit"
    EVICTED = "evicted"


@dataclass(frozen=True, slots=True)
class Dropped:
    """A PR the filters rejected, the rule that rejected it, and a human explanation built from config only."""

    pr: PullRequest
    reason: DropReason
    detail: str
    position: int | None = None
    """``OVER_LIMIT``: the PR's place in the queue for an environment, from 1."""
    evicted_for: int | None = None
    """``EVICTED``, or ``OVER_LIMIT`` after an eviction: the PR it made room for."""


@dataclass(frozen=True, slots=True)
class FilterResult:
    """The PRs that get an environment (sorted by number) and the ones that do not, each with its reason."""

    kept: tuple[PullRequest, ...]
    dropped: tuple[Dropped, ...]
    admitted: tuple[int, ...] = ()
    """Kept PRs without an environment yet while a cap is set: given a place this cycle (a webhook's cycle for
    another PR creates them too, so the place freed by a closed PR is taken at once)."""

    def queued(self) -> list[Dropped]:
        """The PRs waiting for an environment, head of the queue first."""
        return sorted((d for d in self.dropped if d.position is not None), key=lambda d: d.position or 0)


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
        paths_include: tuple[re.Pattern[str], ...] = (),
        paths_exclude: tuple[re.Pattern[str], ...] = (),
        changed_files: ChangedFiles | None = None,
        keep_label: str | None = None,
    ) -> None:
        self.settings = settings
        self._branch_include = branch_include
        self._branch_exclude = branch_exclude
        self._base_include = base_include
        self._title_exclude = title_exclude
        self._skip_rules = skip_rules
        self._key = key_prefix
        self._paths_include = paths_include
        self._paths_exclude = paths_exclude
        self._changed_files = changed_files
        self.keep_label = keep_label
        self._evicted: dict[int, tuple[str, int]] = {}  # PR → (its sha when evicted, the PR it made room for)
        self._evicted_guard = threading.Lock()

    def forgive(self, pr: int) -> None:
        """PR ``pr`` asked to come back (``/preview``): an eviction no longer holds it back."""
        with self._evicted_guard:
            self._evicted.pop(pr, None)

    def apply(self, prs: Iterable[PullRequest], deployed: Mapping[int, datetime | None] | None = None) -> FilterResult:
        """Split ``prs`` into kept and dropped. Deterministic: the same input gives the same output.

        Args:
            prs: the open PRs.
            deployed: the PRs that have an environment, each with its last deployment (None: unknown); for the
                cap (see the module docstring). None: not known, the lowest numbers are kept.

        Raises:
            SourceError: the changed files of a PR could not be read (path filters only); the cycle then has no
                desired state, so it destroys nothing.
        """
        kept: list[PullRequest] = []
        dropped: list[Dropped] = []
        for pr in sorted(prs, key=lambda p: p.number):
            rejection = self._check(pr)
            if rejection is None:
                kept.append(pr)
            else:
                dropped.append(rejection)
        admitted: tuple[int, ...] = ()
        limit = self.settings.max_environments
        if limit is not None:
            kept, over, admitted = self._capacity(kept, limit, deployed)
            dropped += over
        for d in dropped:
            logger.debug("PR #%d dropped: %s (%s)", d.pr.number, d.reason, d.detail)
        dropped.sort(key=lambda d: d.pr.number)
        return FilterResult(kept=tuple(kept), dropped=tuple(dropped), admitted=admitted)

    __call__ = apply

    def _capacity(
        self, candidates: list[PullRequest], limit: int, deployed: Mapping[int, datetime | None] | None
    ) -> tuple[list[PullRequest], list[Dropped], tuple[int, ...]]:
        """Kept, dropped and newly admitted PRs under the cap (``candidates`` sorted by number)."""
        has = {} if deployed is None else deployed
        holding = [p for p in candidates if p.number in has][:limit]
        holders = {p.number for p in holding}
        queue = [p for p in candidates if p.number not in holders]  # by number: who asked first
        dropped: list[Dropped] = []
        with self._evicted_guard:
            for p in queue:  # a push clears an eviction
                mark = self._evicted.get(p.number)
                if mark is not None and mark[0] != p.sha:
                    del self._evicted[p.number]
            free = max(0, limit - len(holding))
            admitted, queue = queue[:free], queue[free:]
            if queue and deployed is not None and self.settings.on_limit == "evict-idle":
                victims = sorted(
                    (p for p in holding if self.keep_label is None or self.keep_label not in p.labels),
                    key=lambda p: (_timestamp(has.get(p.number)), p.number),
                )
                for newcomer in [p for p in queue if p.number not in self._evicted]:  # the evicted do not evict back
                    if not victims:
                        break
                    victim = victims.pop(0)
                    holding.remove(victim)
                    queue.remove(newcomer)
                    admitted.append(newcomer)
                    self._evicted[victim.number] = (victim.sha, newcomer.number)
                    text = _evicted_text(newcomer.number)
                    dropped.append(Dropped(victim, DropReason.EVICTED, text, evicted_for=newcomer.number))
                    logger.info("PR #%d evicted to make room for PR #%d", victim.number, newcomer.number)
            for p in admitted:
                self._evicted.pop(p.number, None)
            why = f"waiting for a free environment ({self._key}.max_environments is {limit})"
            for i, p in enumerate(queue, start=1):
                mark = self._evicted.get(p.number)
                detail = why if mark is None else f"{_evicted_text(mark[1])} ({why})"
                for_pr = None if mark is None else mark[1]
                dropped.append(Dropped(p, DropReason.OVER_LIMIT, detail, position=i, evicted_for=for_pr))
        kept = sorted(holding + admitted, key=lambda p: p.number)
        new = tuple(p.number for p in admitted) if deployed is not None else ()
        return kept, dropped, new

    def _check(self, pr: PullRequest) -> Dropped | None:
        s, key = self.settings, self._key
        if pr.draft and not s.allow_drafts:
            return Dropped(pr, DropReason.DRAFT, f"draft PRs are skipped ({key}.allow_drafts is false)")
        if pr.fork and not s.allow_forks and not pr.approved:
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
        return self._check_paths(pr)

    def _check_paths(self, pr: PullRequest) -> Dropped | None:
        if not (self._paths_include or self._paths_exclude) or self._changed_files is None:
            return None
        key = self._key
        files = list(self._changed_files(pr))
        if self._paths_include and not any(g.fullmatch(f) for f in files for g in self._paths_include):
            return Dropped(pr, DropReason.PATHS_NOT_INCLUDED, f"no changed file matches {key}.paths_include")
        if self._paths_exclude and files and all(any(g.fullmatch(f) for g in self._paths_exclude) for f in files):
            return Dropped(pr, DropReason.PATHS_EXCLUDED, f"every changed file matches {key}.paths_exclude")
        return None


def _evicted_text(for_pr: int) -> str:
    return f"evicted to make room for PR #{for_pr}; push or comment /preview to come back"


def _timestamp(at: datetime | None) -> float:
    """Oldest first; an unknown last deployment counts as the oldest."""
    return float("-inf") if at is None else at.timestamp()


def compile_filters(
    settings: FilterSettings,
    *,
    key_prefix: str = "filters",
    changed_files: ChangedFiles | None = None,
    extra_skip_labels: tuple[str, ...] = (),
    keep_label: str | None = "preview/keep",
) -> PullRequestFilter:
    """Compile ``settings`` once, at start-up.

    Args:
        settings: the validated filter settings.
        key_prefix: where the settings live in the configuration, for error messages.
        changed_files: what the source says a PR changes; required when path globs are set.
        extra_skip_labels: skip labels the configuration implies (``commands.off_label``), after ``skip_labels``.
        keep_label: a PR with this label is never evicted (``serve.ttl.keep_label``).

    Raises:
        ConfigError: a regex or glob does not compile, a skip label is empty, or path globs are set for a source
            that cannot list a PR's changed files; the key names the setting (``filters.branch_include``,
            ``filters.skip_labels[1]``, ``filters.paths_include[0]``...).
    """
    skip_rules: list[_LabelRule] = []
    for i, entry in enumerate(settings.skip_labels):
        negated = entry.startswith("!")
        label = entry[1:] if negated else entry
        if not label:
            raise ConfigError(f"{key_prefix}.skip_labels[{i}]", "empty label")
        skip_rules.append(_LabelRule(label=label, when_absent=negated))
    skip_rules += [_LabelRule(label=label, when_absent=False) for label in extra_skip_labels if label]
    for i, label in enumerate(settings.labels):
        if not label:
            raise ConfigError(f"{key_prefix}.labels[{i}]", "empty label")
    include = tuple(_glob(g, f"{key_prefix}.paths_include[{i}]") for i, g in enumerate(settings.paths_include))
    exclude = tuple(_glob(g, f"{key_prefix}.paths_exclude[{i}]") for i, g in enumerate(settings.paths_exclude))
    if (include or exclude) and changed_files is None:
        key = f"{key_prefix}.paths_include" if include else f"{key_prefix}.paths_exclude"
        raise ConfigError(key, "needs a source that lists a PR's changed files (source.type github)")
    return PullRequestFilter(
        settings,
        branch_include=_regex(settings.branch_include, f"{key_prefix}.branch_include"),
        branch_exclude=_regex(settings.branch_exclude, f"{key_prefix}.branch_exclude"),
        base_include=_regex(settings.base_include, f"{key_prefix}.base_include"),
        title_exclude=_regex(settings.title_exclude, f"{key_prefix}.title_exclude"),
        skip_rules=tuple(skip_rules),
        key_prefix=key_prefix,
        paths_include=include,
        paths_exclude=exclude,
        changed_files=changed_files,
        keep_label=keep_label,
    )


def _glob(pattern: str, key: str) -> re.Pattern[str]:
    """A path glob as a regex matched against the whole path: ``**`` spans directories, ``*``/``?`` do not."""
    if not pattern or pattern.startswith("/") or "\x00" in pattern:
        raise ConfigError(key, "expected a relative path glob such as docs/** or **/*.md")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole directories
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ConfigError(key, "unclosed [ in the glob")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out))
    except re.error as e:
        raise ConfigError(key, f"invalid glob: {e.msg}") from e


def _regex(pattern: str | None, key: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(key, f"invalid regular expression: {e.msg} at position {e.pos}") from e
