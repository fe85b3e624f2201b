"""Carrying out ``/preview`` commands on GitHub: check the comment against GitHub, change labels, record approvals,
answer on the PR.

What a command does (the README's "Comment commands" lists the same):

* ``/preview``: adds the labels ``filters.labels`` requires and removes ``commands.off_label``, so the ordinary filters
  deploy the PR and keep deploying it after a restart; on a fork's PR (``filters.allow_forks`` false) it also
  approves the PR's head commit *at this moment*, with a signed marker in the reply (prenv.sources.approvals). A
  later push is not approved: the environment stays at the approved commit and the PR comment asks for a new
  ``/preview``.
* ``/preview destroy``: adds ``commands.off_label`` (and revokes a fork's approval); the environment is torn down and
  stays down until the next ``/preview``.
* ``/preview keep``: adds the TTL's keep label, so the environment never expires.
* ``/preview sleep`` / ``wake``: the environment sleeps now (workloads at zero replicas, the rest kept) or wakes
  (prenv.sleep); no label changes, the request is kept by the sleep source until the stack shows it. A PR labelled
  ``preview/awake`` does not sleep, and the answer says so.

Before acting, GitHub is asked again: the PR must be open (else the answer says so), the comment must still exist
with the same text (an edited or deleted command does nothing), and no earlier answer of prenv's may name the same
comment (a replayed delivery, even after a restart, does nothing: the answers carry a signed marker naming the
comment they answer). Commands from a commenter whose ``author_association`` is not allowed do nothing and get no
answer. Text shown in answers is the commenter's login and commit shas only, in code spans.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from github import Auth, GithubException
from github.GithubObject import GithubObject

from prenv.filters import FilterResult
from prenv.model import PullRequest
from prenv.service.commands import USAGE, Command, Verb
from prenv.service.feedback import code_span
from prenv.sleep import AWAKE_LABEL, Request
from prenv.sources.approvals import Approval, ApprovalSource, marker
from prenv.sources.github import client as github_client
from prenv.sources.github import pull_request_of

logger = logging.getLogger(__name__)

_ANSWERED = re.compile(r"<!-- prenv:command comment=(?P<comment>[0-9]{1,20}) sig=(?P<sig>[0-9a-f]{64}) -->")


@dataclass(frozen=True, slots=True)
class Result:
    """What the service does after a command: reconcile the PR now or not, and why it would go away."""

    reconcile: bool = False
    why: str | None = None
    sleep: Request | None = None
    """``/preview sleep`` or ``wake``: what the sleep source is to be told before the PR is reconciled."""


class CommandActions(Protocol):
    def handle(self, command: Command) -> Result:
        """Carry out ``command``; must not raise."""
        ...


@dataclass(frozen=True, slots=True)
class CommandRules:
    """The settings a command needs (from ``commands``, ``filters`` and ``serve.ttl``)."""

    allowed_associations: frozenset[str]
    off_label: str
    required_labels: tuple[str, ...]
    keep_label: str
    allow_forks: bool
    awake_label: str = AWAKE_LABEL


class GitHubCommands:
    """Commands through PyGithub.

    Args:
        repository: ``owner/name``.
        auth: PyGithub credentials (write access to issues and pull requests).
        secret: the webhook secret, which signs prenv's markers.
        rules: see CommandRules.
        approvals: the source wrapper that reports approved forks; told of every approval at once.
        filters: the reconciler's filters: a ``/preview`` that they would still refuse (a draft, a branch or title
            rule, the path globs...) is answered with their reason.
        base_url, timeout, retries, seconds_between_requests: as for the GitHub source.
    """

    def __init__(
        self,
        repository: str,
        auth: Auth.Auth | None,
        *,
        secret: bytes,
        rules: CommandRules,
        approvals: ApprovalSource | None = None,
        filters: Callable[[list[PullRequest]], FilterResult] | None = None,
        base_url: str = "https://api.github.com",
        timeout: int = 10,
        retries: int = 2,
        seconds_between_requests: float | None = 0.25,
    ) -> None:
        if not secret:
            raise ValueError("commands need the webhook secret to sign their answers")
        self.repository = repository
        self.rules = rules
        self.approvals = approvals
        self.filters = filters
        self._secret = secret
        self._github = github_client(
            auth, base_url, timeout=timeout, retries=retries, seconds_between_requests=seconds_between_requests
        )

    def __repr__(self) -> str:
        return f"GitHubCommands({self.repository!r})"

    def close(self) -> None:
        self._github.close()

    def handle(self, command: Command) -> Result:
        if command.association not in self.rules.allowed_associations:
            # No answer: a drive-by commenter must not be able to make prenv write on the PR.
            logger.info("PR %s: /preview %s from a %s ignored", command.pr, command.verb, command.association)
            return Result()
        try:
            return self._handle(command)
        except GithubException as e:
            logger.warning("PR %s: command not carried out (GitHub HTTP %s)", command.pr, e.status)
        except requests.RequestException as e:
            logger.warning("PR %s: command not carried out (%s)", command.pr, type(e).__name__)
        except Exception:  # the top of a command: the next one must still run
            logger.exception("PR %s: command failed", command.pr)
        return Result()

    # --- the steps -------------------------------------------------------------------------------------------

    def _handle(self, c: Command) -> Result:
        repo = self._github.get_repo(self.repository)  # lazy: no request
        issue = repo.get_issue(c.pr)
        pull = _raw(repo.get_pull(c.pr), complete=True)
        comments = [_raw(item) for item in issue.get_comments()]
        original = next((x for x in comments if x.get("id") == c.comment), None)
        if original is None or original.get("body") != c.body:
            logger.info("PR %s: command comment %s was edited or deleted; ignored", c.pr, c.comment)
            return Result()
        if any(self._answers(x.get("body"), c.comment) for x in comments):
            logger.info("PR %s: command comment %s was already answered (a replay); ignored", c.pr, c.comment)
            return Result()
        who = code_span("@" + c.login)
        answer = self._answer_marker(c.comment)
        if pull.get("state") != "open":
            issue.create_comment(f"{answer}\nThis pull request is closed: {who}'s command changed nothing.")
            return Result()
        if c.verb is Verb.UNKNOWN:
            issue.create_comment(f"{answer}\nNot a command prenv knows; nothing changed. Commands: {USAGE}.")
            return Result()
        labels = {x.get("name") for x in pull.get("labels") or [] if isinstance(x, Mapping)}
        if c.verb is Verb.SLEEP:
            if self.rules.awake_label in labels:
                awake = code_span(self.rules.awake_label)
                issue.create_comment(
                    f"{answer}\n{who}: this PR is labelled {awake}, so it stays awake; nothing changed."
                )
                return Result()
            issue.create_comment(
                f"{answer}\n💤 {who}: putting the environment to sleep (workloads at zero, the database stays); "
                "comment `/preview wake` or push to wake it."
            )
            return Result(reconcile=True, sleep=Request.SLEEP)
        if c.verb is Verb.WAKE:
            issue.create_comment(f"{answer}\n⏰ {who}: waking the environment.")
            return Result(reconcile=True, sleep=Request.WAKE)
        head = _head_sha(pull)
        fork = _is_fork(pull) and not self.rules.allow_forks
        if c.verb is Verb.KEEP:
            if self.rules.keep_label not in labels:
                issue.add_to_labels(self.rules.keep_label)
            keep = code_span(self.rules.keep_label)
            issue.create_comment(f"{answer}\n📌 {who}: this environment never expires (label {keep}).")
            return Result()
        if c.verb is Verb.DESTROY:
            if self.rules.off_label not in labels:
                issue.add_to_labels(self.rules.off_label)
            text = f"{answer}\n🗑️ {who}: tearing the environment down; `/preview` brings it back."
            if fork and head is not None:
                text += "\n" + self._approve(c, head, "revoked")
            issue.create_comment(text)
            return Result(reconcile=True, why=f"{c.login} asked for it with /preview destroy")
        # Verb.DEPLOY
        if head is None:
            logger.warning("PR %s: no head commit in GitHub's answer; /preview not carried out", c.pr)
            return Result()
        if self.rules.off_label in labels:
            issue.remove_from_labels(self.rules.off_label)
        missing = [label for label in self.rules.required_labels if label not in labels]
        if missing:
            issue.add_to_labels(*missing)
        commit = code_span(head[:12])
        refused = self._refused(pull, (labels | set(missing)) - {self.rules.off_label}, fork)
        doing = "deploying it" if refused is None else f"it deploys once the filters allow it: {code_span(refused)}"
        if fork:
            text = (
                f"{answer}\n✅ {who} approved commit {commit} of this fork's pull request: {doing}. "
                "Only this commit is approved: after a new push, a maintainer comments `/preview` again."
                "\n" + self._approve(c, head, "approved")
            )
        elif refused is None:
            text = f"{answer}\n▶️ {who}: deploying commit {commit}."
        else:
            text = f"{answer}\n⏸️ {who}: commit {commit} {doing}."
        issue.create_comment(text)
        if fork and self.approvals is not None:
            self.approvals.record(head, Approval(c.pr, head, "approved", c.comment))
        return Result(reconcile=True)

    def _refused(self, pull: Mapping[str, Any], labels: set[object], fork: bool) -> str | None:
        """Why the filters would still give the PR no environment once the command's labels are on, or None."""
        pr = pull_request_of(pull) if self.filters is not None else None
        if pr is None or self.filters is None:
            return None
        candidate = dataclasses.replace(pr, labels=frozenset(x for x in labels if isinstance(x, str)), approved=fork)
        dropped = self.filters([candidate]).dropped
        return dropped[0].detail if dropped else None

    def _approve(self, c: Command, head: str, state: str) -> str:
        approval = Approval(c.pr, head, "approved" if state == "approved" else "revoked", c.comment)
        if state != "approved" and self.approvals is not None:
            self.approvals.record(head, approval)
        return marker(self._secret, self.repository, approval)

    # --- markers of answered comments ------------------------------------------------------------------------

    def _sig(self, comment: int) -> str:
        message = f"{self.repository.lower()}:answered:{comment}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _answer_marker(self, comment: int) -> str:
        return f"<!-- prenv:command comment={comment} sig={self._sig(comment)} -->"

    def _answers(self, body: object, comment: int) -> bool:
        if not isinstance(body, str):
            return False
        return any(
            int(m["comment"]) == comment and hmac.compare_digest(m["sig"], self._sig(comment))
            for m in _ANSWERED.finditer(body)
        )


def _raw(item: GithubObject, *, complete: bool = False) -> Mapping[str, Any]:
    # A listing's items carry their JSON already; GithubObject.raw_data returns it without completing the object.
    data = item.raw_data if complete else GithubObject.raw_data.fget(item)  # type: ignore[attr-defined]
    return data if isinstance(data, Mapping) else {}


def _head_sha(pull: Mapping[str, Any]) -> str | None:
    head = pull.get("head")
    sha = head.get("sha") if isinstance(head, Mapping) else None
    return sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _is_fork(pull: Mapping[str, Any]) -> bool:
    head, base = pull.get("head"), pull.get("base")
    head_repo = head.get("repo") if isinstance(head, Mapping) else None
    base_repo = base.get("repo") if isinstance(base, Mapping) else None
    if not isinstance(head_repo, Mapping) or not isinstance(base_repo, Mapping):
        return True  # a deleted fork
    return bool(head_repo.get("id") != base_repo.get("id"))
