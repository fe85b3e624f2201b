"""Telling the pull request what happened to its environment: one comment kept up to date, and Deployments.

Why these two: the comment is what reviewers read (status, URL, commit, last error); GitHub Deployments put the
environment on the PR's timeline and in the "Environments" panel with a "View deployment" button.

* One comment per PR, created once and edited in place; ours is found again by a hidden marker at its start
  (``<!-- prenv:preview -->``), optionally only among comments by ``bot_login``, so a restart does not add a
  second one.
* A Deployment for environment ``pr-<n>`` per deployed commit, with statuses ``in_progress`` while deploying,
  ``success`` with ``environment_url``, ``failure``, and ``inactive`` on teardown.
* Text that comes from the PR (title, branch) is shown in Markdown code spans, which GitHub renders literally: no
  links, mentions, HTML or references can be injected. Errors arrive already free of secrets (prenv.errors).
* Feedback is best effort: a GitHub failure is logged (status code only) and never fails or delays a reconcile
  beyond its own bounded retries.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests
from github import Auth, GithubException
from github.Deployment import Deployment
from github.Repository import Repository

from prenv import naming
from prenv.model import PullRequest
from prenv.reservations import Reservation, human_duration, running_seconds
from prenv.sources.github import client as github_client

logger = logging.getLogger(__name__)

MARKER = "<!-- prenv:preview -->"
_MAX_TEXT = 200  # characters of PR-derived text shown
_MAX_ERROR = 1000
_MAX_DESCRIPTION = 140  # GitHub's limit for a deployment status description
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class Phase(enum.StrEnum):
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    TORN_DOWN = "torn-down"
    TEARDOWN_FAILED = "teardown-failed"
    AWAITING_APPROVAL = "awaiting-approval"
    """A fork's PR moved past its approved commit; ``reason`` says which commit still runs."""
    QUEUED = "queued"
    """No environment yet: ``filters.max_environments`` are running; ``position`` in the queue, ``reason`` why."""
    ASLEEP = "asleep"
    """An up put the environment to sleep (prenv.sleep): workloads at zero, the rest kept; the Deployment is
    ``inactive`` until a wake."""


@dataclass(frozen=True, slots=True)
class Report:
    """One thing to tell PR ``pr``.

    ``pull`` is the PR as last seen (None for a teardown, whose PR may be gone from the source); ``error`` is a
    secret-free summary; ``reason`` says why an environment was torn down.
    """

    pr: int
    phase: Phase
    at: datetime
    pull: PullRequest | None = None
    url: str | None = None
    error: str | None = None
    reason: str | None = None
    drift: str | None = None
    """What the last drift check found (``Drift.summary``), shown when something drifted."""
    running_since: datetime | None = None
    """When the environment was first deployed (its stack's creation); with it, a ready environment's comment says
    what it reserves (``reserved``) and for how long it has run."""
    reserved: Reservation | None = None
    """The CPU and memory its pods request (prenv.reservations); None: unknown (the cluster could not be asked)."""
    position: int | None = None
    """``QUEUED``: the PR's place in the queue for an environment, from 1."""


class Feedback(Protocol):
    def report(self, report: Report) -> None:
        """Tell the PR. Must not raise; called from operation threads, possibly for several PRs at once."""
        ...


class NullFeedback:
    """For sources without a place to write back (the file source, PostgreSQL table)."""

    def report(self, report: Report) -> None:
        logger.debug("PR %s: %s", report.pr, report.phase.value)


# --- rendering ------------------------------------------------------------------------------------------------


def code_span(text: str, limit: int = _MAX_TEXT) -> str:
    """``text`` as a Markdown code span that renders literally, whatever it contains."""
    clean = _CONTROL.sub(" ", text).strip()
    if len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    if not clean:
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", clean)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {clean} {fence}"


def _link(url: str | None) -> str:
    if not url:
        return "(none yet)"
    return f"<{url}>" if _SAFE_URL.fullmatch(url) else code_span(url)


_HEADLINES = {
    Phase.DEPLOYING: "⏳ deploying",
    Phase.READY: "✅ ready",
    Phase.FAILED: "❌ deployment failed",
    Phase.TORN_DOWN: "🗑️ torn down",
    Phase.TEARDOWN_FAILED: "⚠️ teardown failed",
    Phase.AWAITING_APPROVAL: "⏸️ waiting for a maintainer's approval",
    Phase.QUEUED: "🕒 waiting for a free environment",
    Phase.ASLEEP: "💤 asleep",
}


def _headline(report: Report) -> str:
    if report.phase is Phase.ASLEEP and report.reason:
        return f"{_HEADLINES[report.phase]} — {report.reason}"  # how to wake it: prenv's own text, never PR text
    return _HEADLINES[report.phase]


def render_comment(report: Report, pull: PullRequest | None, url: str | None) -> str:
    """The whole comment body for the PR's latest state."""
    lines = [
        MARKER,
        f"### Preview environment `{naming.stack_name(report.pr)}`: {_headline(report)}",
        "",
    ]
    if report.phase in (Phase.TORN_DOWN, Phase.TEARDOWN_FAILED):
        lines.append(f"- **Why:** {code_span(report.reason or 'the PR was closed or no longer matches the filters')}")
    elif report.phase is Phase.QUEUED:
        lines.append(
            f"- **Queue:** position {report.position or '?'}: every environment allowed is running; this PR gets "
            "one as soon as one goes (first asked, first served)."
        )
        if report.reason:  # built from configuration and PR numbers only (prenv.filters)
            lines.append(f"- **Why:** {code_span(report.reason)}")
    elif report.phase is Phase.AWAITING_APPROVAL:
        lines += [
            "- **Approval needed:** this fork's new commit is not deployed until a maintainer comments `/preview`"
            " (each push needs a new approval).",
            f"- **Still running:** {code_span(report.reason or '(nothing)')}",
            f"- **URL:** {_link(url)}",
        ]
    elif report.phase is Phase.ASLEEP:
        lines += [
            "- **Asleep:** its workloads are scaled to zero; the database and the URL stay (the URL answers again "
            "once it is awake).",
            f"- **URL:** {_link(url)}",
        ]
    else:
        lines.append(f"- **URL:** {_link(url)}")
    if pull is not None:
        lines += [
            f"- **Commit:** {code_span(pull.sha[:12])}",
            f"- **Branch:** {code_span(pull.branch)}",
            f"- **Title:** {code_span(pull.title)}",
        ]
    lines.append(f"- **Updated:** {report.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    if report.phase is Phase.READY and report.running_since is not None:
        lines.append(cost_line(report.reserved, report.running_since, report.at))
    if report.drift and report.drift != "none":
        lines.append(
            f"- **Drift:** {code_span(report.drift)}: the cluster differs from this environment's last deployment "
            "(changed outside prenv)"
        )
    if report.error and report.phase in (Phase.FAILED, Phase.TEARDOWN_FAILED):
        lines += ["", "**Error:**", "", _fenced(report.error)]
    lines += ["", "<sub>Maintained by prenv; this comment is edited in place.</sub>"]
    return "\n".join(lines)


def cost_line(reserved: Reservation | None, since: datetime, at: datetime) -> str:
    """What a ready environment costs: the requests its pods reserve and how long it has run, as of ``at``."""
    # Numbers only (no PR text), so a plain code span.
    what = f"`{reserved.summary()}`" if reserved is not None else "unknown (the cluster could not be asked)"
    ran = human_duration(running_seconds(since, at) or 0)
    return (
        f"- **Reserves:** {what} (CPU and memory requests); running since "
        f"{since.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({ran} at this update)"
    )


def _fenced(text: str) -> str:
    clean = text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", clean)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{clean}\n{fence}"


def _description(text: str) -> str:
    clean = _CONTROL.sub(" ", text)
    return clean if len(clean) <= _MAX_DESCRIPTION else clean[: _MAX_DESCRIPTION - 1] + "…"


# --- what every forge's feedback shares --------------------------------------------------------------------------


class ForgeFeedback:
    """The part of writing back that does not depend on the forge: one report at a time per PR (reports for
    different PRs run in parallel), the PR and URL remembered for later reports (a teardown has no PR), the health
    check that turns a ``ready`` whose page does not answer into a failure, and no exception ever escaping.

    A subclass writes to its forge in ``_update``; ``preliminary`` marks the ``deploying`` shown while the health
    check runs (not a phase of its own: GitHub makes no deployment for it)."""

    noun = "PR"  # how the logs name one (GitLab: "MR !")
    http_errors: tuple[type[Exception], ...] = ()  # the forge client's HTTP errors: logged by status, not raised

    def __init__(self, health_check: Callable[[str], bool] | None) -> None:
        self.health_check = health_check
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._pulls: dict[int, PullRequest] = {}  # PR -> as last seen, for the teardown comment
        self._urls: dict[int, str] = {}

    def report(self, report: Report) -> None:
        with self._lock_of(report.pr):
            try:
                self._report(report)
            except Exception:  # the top of a listener: feedback never breaks an operation
                logger.exception("%s%s: feedback failed", self.noun, report.pr)

    def _report(self, report: Report) -> None:
        if report.pull is not None:
            self._pulls[report.pr] = report.pull
        if report.url:
            self._urls[report.pr] = report.url
        if report.phase is Phase.READY and report.url and self.health_check is not None:
            deploying = Report(report.pr, Phase.DEPLOYING, report.at, report.pull, report.url)
            self._update(report.pr, deploying, preliminary=True)
            if not self.health_check(report.url):
                report = Report(
                    report.pr,
                    Phase.FAILED,
                    datetime.now(UTC),
                    report.pull,
                    report.url,
                    error="the environment did not answer HTTP 200 before the health check timed out",
                )
        self._update(report.pr, report, preliminary=False)

    def _update(self, pr: int, report: Report, *, preliminary: bool) -> None:
        """Write ``report`` to the forge, with the PR and URL last seen (``self._pulls``, ``self._urls``)."""
        raise NotImplementedError

    def _forget(self, pr: int) -> None:
        """Drop what is remembered of ``pr`` (after its teardown)."""
        self._pulls.pop(pr, None)
        self._urls.pop(pr, None)

    def _lock_of(self, pr: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(pr, threading.Lock())

    @contextmanager
    def _best_effort(self, pr: int, what: str) -> Iterator[None]:
        """One part of an update (a comment, a deployment status): a forge or network error is logged, status code
        or error type only, and the next part still runs."""
        try:
            yield
        except self.http_errors as e:
            logger.warning("%s%s: could not update the %s (HTTP %s)", self.noun, pr, what, self._status(e))
        except requests.RequestException as e:
            logger.warning("%s%s: could not update the %s (%s)", self.noun, pr, what, type(e).__name__)

    @staticmethod
    def _status(error: Exception) -> int | None:
        """The HTTP status code of one of ``http_errors``."""
        raise NotImplementedError


# --- GitHub ---------------------------------------------------------------------------------------------------


class GitHubFeedback(ForgeFeedback):
    """Comments and Deployments through PyGithub.

    Args:
        repository: ``owner/name``.
        auth: PyGithub credentials (a token or an app installation), built by the caller from env or files.
        base_url: API root (GitHub Enterprise: ``https://<host>/api/v3``).
        bot_login: when set, only comments by this login are considered ours.
        health_check: called with the environment URL before announcing success; False turns it into a failure.
        timeout, retries, seconds_between_requests: per request, as for the GitHub source.
    """

    http_errors = (GithubException,)

    def __init__(
        self,
        repository: str,
        auth: Auth.Auth | None,
        *,
        base_url: str = "https://api.github.com",
        bot_login: str | None = None,
        health_check: Callable[[str], bool] | None = None,
        timeout: int = 10,
        retries: int = 2,
        seconds_between_requests: float | None = 0.25,
    ) -> None:
        super().__init__(health_check)
        self.repository = repository
        self.bot_login = bot_login
        self._github = github_client(
            auth, base_url, timeout=timeout, retries=retries, seconds_between_requests=seconds_between_requests
        )
        self._comments: dict[int, int] = {}  # PR -> our comment id
        self._deployments: dict[int, int] = {}  # PR -> deployment id of the commit being/last deployed

    def __repr__(self) -> str:
        return f"GitHubFeedback({self.repository!r})"

    def close(self) -> None:
        self._github.close()

    def _update(self, pr: int, report: Report, *, preliminary: bool) -> None:
        pull = self._pulls.get(pr)
        url = self._urls.get(pr)
        repo = self._github.get_repo(self.repository)
        if not preliminary:
            with self._best_effort(pr, "deployment status"):
                self._deployment_status(repo, report, pull, url)
        with self._best_effort(pr, "comment"):
            self._comment(repo, pr, render_comment(report, pull, url))
        if report.phase is Phase.TORN_DOWN:
            self._forget(pr)
            self._deployments.pop(pr, None)

    # --- the comment -----------------------------------------------------------------------------------------

    def _comment(self, repo: Repository, pr: int, body: str) -> None:
        issue = repo.get_issue(pr)
        known = self._comments.get(pr)
        if known is not None:
            try:
                issue.get_comment(known).edit(body)
                return
            except GithubException as e:
                if e.status != 404:
                    raise
                self._comments.pop(pr, None)  # deleted by someone: find or create another
        for comment in issue.get_comments():
            if comment.body and comment.body.startswith(MARKER) and self._ours(comment.user.login):
                comment.edit(body)
                self._comments[pr] = comment.id
                return
        self._comments[pr] = issue.create_comment(body).id

    def _ours(self, login: str | None) -> bool:
        return self.bot_login is None or login == self.bot_login

    # --- deployments -----------------------------------------------------------------------------------------

    def _deployment_status(self, repo: Repository, report: Report, pull: PullRequest | None, url: str | None) -> None:
        env = naming.stack_name(report.pr)
        if report.phase is Phase.DEPLOYING:
            if pull is None:
                return
            deployment = repo.create_deployment(
                ref=pull.sha,
                task="deploy",
                auto_merge=False,
                required_contexts=[],
                environment=env,
                description=_description(f"prenv preview of PR {report.pr}"),
                transient_environment=True,
                production_environment=False,
            )
            self._deployments[report.pr] = deployment.id
            deployment.create_status("in_progress", description="deploying", environment=env)
            return
        if report.phase in (Phase.TEARDOWN_FAILED, Phase.AWAITING_APPROVAL, Phase.QUEUED):
            return
        current = self._current_deployment(
            repo, report.pr, pull, create=report.phase not in (Phase.TORN_DOWN, Phase.ASLEEP)
        )
        if current is None:
            return
        if report.phase is Phase.READY:
            current.create_status(
                "success",
                description="ready",
                environment=env,
                environment_url=url or "",
                auto_inactive=True,
            )
        elif report.phase is Phase.FAILED:
            current.create_status("failure", description=_description(report.error or "failed"), environment=env)
        else:
            current.create_status("inactive", description=_description(report.reason or "torn down"), environment=env)

    def _current_deployment(
        self, repo: Repository, pr: int, pull: PullRequest | None, *, create: bool
    ) -> Deployment | None:
        known = self._deployments.get(pr)
        if known is not None:
            return repo.get_deployment(known)
        for deployment in repo.get_deployments(environment=naming.stack_name(pr)):
            self._deployments[pr] = deployment.id
            return deployment  # newest first
        if create and pull is not None:
            deployment = repo.create_deployment(
                ref=pull.sha,
                auto_merge=False,
                required_contexts=[],
                environment=naming.stack_name(pr),
                transient_environment=True,
                production_environment=False,
            )
            self._deployments[pr] = deployment.id
            return deployment
        return None

    @staticmethod
    def _status(error: Exception) -> int | None:
        return error.status if isinstance(error, GithubException) else None
