"""Telling a GitLab merge request what happened to its environment: one note kept up to date, and an environment.

The GitLab counterpart of prenv.service.feedback.GitHubFeedback, behind the same ``Feedback`` interface and with
the same note text (``render_comment``, hostile MR text shown literally in code spans):

* One note per MR, created once and edited in place, found again after a restart by the hidden marker at its start
  (optionally only among notes by ``bot_username``).
* A GitLab environment ``preview/pr-<n>`` per MR (GitLab groups ``preview/`` environments in one folder) whose
  ``external_url`` is the preview URL once it is ready; it is stopped when the environment is torn down.
* Best effort: a GitLab failure is logged (status code only) and never fails or delays a reconcile beyond the
  client's own bounded retries (prenv.sources.gitlab.client); a rate limit is not waited out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitlab.exceptions import GitlabError

from prenv import naming
from prenv.service.feedback import MARKER, ForgeFeedback, Phase, Report, render_comment
from prenv.sources.gitlab import client as gitlab_client
from prenv.sources.gitlab import project_path

logger = logging.getLogger(__name__)

ENVIRONMENT_FOLDER = "preview/"

_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")


def environment_name(pr: int) -> str:
    """The GitLab environment of MR ``pr``: ``preview/pr-<n>`` (from the number only)."""
    return ENVIRONMENT_FOLDER + naming.stack_name(pr)


class GitLabFeedback(ForgeFeedback):
    """MR notes and environments through python-gitlab.

    Args:
        project: ``group/name`` or the numeric project id.
        token: an access token with ``api`` scope (a CI job token cannot write notes).
        base_url: the instance root.
        ca_bundle: PEM bundle for a self-managed instance's certificate.
        bot_username: when set, only notes by this user are considered ours.
        health_check: called with the environment URL before announcing success; False turns it into a failure.
        timeout: seconds per request.
    """

    noun = "MR !"
    http_errors = (GitlabError,)

    def __init__(
        self,
        project: str,
        token: str | None,
        *,
        base_url: str = "https://gitlab.com",
        ca_bundle: Path | None = None,
        bot_username: str | None = None,
        health_check: Callable[[str], bool] | None = None,
        timeout: int = 10,
    ) -> None:
        super().__init__(health_check)
        self.project = project
        self._path = project_path(project)
        self.bot_username = bot_username
        self._gitlab = gitlab_client(base_url, token=token, ca_bundle=ca_bundle, timeout=timeout)
        self._notes: dict[int, int] = {}  # MR iid -> our note id

    def __repr__(self) -> str:
        return f"GitLabFeedback({self.project!r})"

    def close(self) -> None:
        self._gitlab.session.close()

    def _update(self, pr: int, report: Report, *, preliminary: bool) -> None:
        # The environment is written even for the preliminary "deploying": GitLab has no deployment per commit here.
        pull, url = self._pulls.get(pr), self._urls.get(pr)
        with self._best_effort(pr, "environment"):
            self._environment(pr, report.phase, url)
        with self._best_effort(pr, "note"):
            self._note(pr, render_comment(report, pull, url))
        if report.phase is Phase.TORN_DOWN:
            self._forget(pr)

    # --- the note --------------------------------------------------------------------------------------------

    def _note(self, pr: int, body: str) -> None:
        notes = f"/projects/{self._path}/merge_requests/{pr}/notes"
        known = self._notes.get(pr)
        if known is not None:
            try:
                self._gitlab.http_put(f"{notes}/{known}", post_data={"body": body}, obey_rate_limit=False)
                return
            except GitlabError as e:
                if e.response_code != 404:
                    raise
                self._notes.pop(pr, None)  # deleted by someone: find or create another
        for note in self._gitlab.http_list(
            notes, {"sort": "asc", "order_by": "created_at"}, iterator=True, obey_rate_limit=False
        ):
            if self._is_ours(note):
                self._gitlab.http_put(f"{notes}/{note['id']}", post_data={"body": body}, obey_rate_limit=False)
                self._notes[pr] = int(note["id"])
                return
        # POSTs are never retried (prenv.sources.gitlab.client): one GitLab carried out before a 5xx would leave a
        # second note. A 429 is not slept through either (obey_rate_limit=False): the next report rewrites the note.
        created = self._gitlab.http_post(notes, post_data={"body": body}, obey_rate_limit=False)
        if isinstance(created, dict):
            self._notes[pr] = int(created["id"])

    def _is_ours(self, note: Any) -> bool:
        if not isinstance(note, dict) or note.get("system"):
            return False
        body = note.get("body")
        if not isinstance(body, str) or not body.startswith(MARKER):
            return False
        author = note.get("author")
        username = author.get("username") if isinstance(author, dict) else None
        return self.bot_username is None or username == self.bot_username

    # --- the environment -------------------------------------------------------------------------------------

    def _environment(self, pr: int, phase: Phase, url: str | None) -> None:
        if phase in (Phase.TEARDOWN_FAILED, Phase.QUEUED):
            return
        environments = f"/projects/{self._path}/environments"
        name = environment_name(pr)
        found = [
            env
            for env in self._gitlab.http_list(environments, {"name": name}, iterator=True, obey_rate_limit=False)
            if isinstance(env, dict) and env.get("name") == name
        ]
        if phase is Phase.TORN_DOWN:
            for env in found:
                if env.get("state") != "stopped":
                    self._gitlab.http_post(f"{environments}/{env['id']}/stop", obey_rate_limit=False)
            return
        external = url if url and _SAFE_URL.fullmatch(url) else None
        if not found:
            data = {"name": name, "tier": "development", **({"external_url": external} if external else {})}
            self._gitlab.http_post(environments, post_data=data, obey_rate_limit=False)
        elif external and found[0].get("external_url") != external:
            self._gitlab.http_put(
                f"{environments}/{found[0]['id']}", post_data={"external_url": external}, obey_rate_limit=False
            )

    @staticmethod
    def _status(error: Exception) -> int | None:
        return error.response_code if isinstance(error, GitlabError) else None
