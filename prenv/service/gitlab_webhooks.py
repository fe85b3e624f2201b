"""What a GitLab webhook delivery means for prenv, decided without I/O: authentic? seen before? which MR or branch?

The GitLab counterpart of prenv.service.webhooks, with the same verdicts, so the HTTP layer treats both alike.

* Authenticity: GitLab sends the webhook's secret token verbatim in ``X-Gitlab-Token`` (no HMAC). It is compared in
  constant time with the service's webhook secret; nothing else is looked at before it passes.
* Redeliveries: GitLab retries a failed delivery with the same ``Idempotency-Key`` (GitLab 17.4+) and, for older
  instances, the same ``X-Gitlab-Event-UUID``; the first one present names the delivery.
* Meaning: a ``Merge Request Hook`` whose action can change an environment (open, reopen, close, merge, and update
  with new commits, labels, draft state, title or target branch) names one MR, by its iid; a ``Push Hook`` names one
  branch when the source lists branches (``*-branches``), as the number :func:`prenv.naming.branch_number` gives it.
  Approvals, description edits and notes are acknowledged and ignored (prenv has no comment commands). As for GitHub,
  the payload only picks *which* environment to reconcile; its state is read from the source.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from prenv import naming
from prenv.service.webhooks import Decision, Verdict

MERGE_REQUEST_HOOK = "Merge Request Hook"
PUSH_HOOK = "Push Hook"
NOTE_HOOK = "Note Hook"
_LABELS = {MERGE_REQUEST_HOOK: "gitlab_merge_request", PUSH_HOOK: "gitlab_push", NOTE_HOOK: "gitlab_note"}
# Actions that always matter, and what prenv calls them (prenv.service.service words the teardown reason).
MR_ACTIONS = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "merged"}
# For ``update``: only these changes can change an environment (filters read labels, draft, title, target branch).
UPDATE_CHANGES = frozenset({"labels", "draft", "work_in_progress", "title", "target_branch", "source_branch"})
_DELETED = "0" * 40
_BRANCH_REF = "refs/heads/"


def verify_token(secret: bytes, header: str | None) -> bool:
    """True when ``header`` (``X-Gitlab-Token``) is the secret. Constant time; never raises."""
    if not secret or not header:
        return False
    # compare_digest on bytes accepts any content; on str it rejects non-ASCII, which an attacker controls.
    return hmac.compare_digest(secret, header.encode("utf-8", "replace"))


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The id GitLab keeps across retries of one delivery: ``Idempotency-Key``, else ``X-Gitlab-Event-UUID``."""
    for name in ("idempotency-key", "x-gitlab-event-uuid"):
        value = headers.get(name)
        if value:
            return f"gitlab:{value}"
    return None


def event_label(event: str | None) -> str:
    """The event as a metrics label: known names only, so a sender cannot grow the label set."""
    return _LABELS.get(event or "", "gitlab_other")


def decide(event: str | None, payload: object, project: str | None, *, branches: bool = False) -> Decision:
    """Classify an authentic delivery.

    Args:
        event: the ``X-Gitlab-Event`` header.
        payload: the parsed JSON body.
        project: the ``group/name`` path (case-insensitive) or numeric id whose MRs we serve; None accepts any.
        branches: the source lists branches: push events count, merge request events do not.
    """
    if event not in (MERGE_REQUEST_HOOK, PUSH_HOOK):
        return Decision(Verdict.IGNORED)
    if (event == PUSH_HOOK) != branches:
        return Decision(Verdict.IGNORED)
    if not isinstance(payload, dict):
        return Decision(Verdict.MALFORMED)
    if event == PUSH_HOOK:
        return _push(payload, project)
    attrs = payload.get("object_attributes")
    if not isinstance(attrs, dict):
        return Decision(Verdict.MALFORMED)
    action = _action(attrs, payload.get("changes"))
    if action is None:
        return Decision(Verdict.IGNORED)
    if not _same_project(payload, project):
        return Decision(Verdict.OTHER_REPOSITORY, action=action)
    iid = attrs.get("iid")
    if isinstance(iid, bool) or not isinstance(iid, int) or not 0 < iid < naming.BRANCH_NUMBER_BASE:
        return Decision(Verdict.MALFORMED, action=action)
    return Decision(Verdict.RECONCILE, pr=iid, action=action)


def _action(attrs: Mapping[str, Any], changes: object) -> str | None:
    action = attrs.get("action")
    if not isinstance(action, str):
        return None
    if action in MR_ACTIONS:
        return MR_ACTIONS[action]
    if action != "update":
        return None  # approved, unapproved, approval, unapproval...
    if attrs.get("oldrev"):
        return "synchronize"  # new commits
    changed = set(changes) if isinstance(changes, dict) else set()
    return "updated" if changed & UPDATE_CHANGES else None


def _push(payload: Mapping[str, Any], project: str | None) -> Decision:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith(_BRANCH_REF) or len(ref) > 1024:
        return Decision(Verdict.IGNORED)
    action = "branch-deleted" if payload.get("after") == _DELETED else "pushed"
    if not _same_project(payload, project):
        return Decision(Verdict.OTHER_REPOSITORY, action=action)
    branch = ref[len(_BRANCH_REF) :]
    if not branch:
        return Decision(Verdict.MALFORMED, action=action)
    return Decision(Verdict.RECONCILE, pr=naming.branch_number(branch), action=action)


def _same_project(payload: Mapping[str, Any], project: str | None) -> bool:
    if project is None:
        return True
    info = payload.get("project")
    info = info if isinstance(info, dict) else {}
    if project.isdigit():
        pid = info.get("id", payload.get("project_id"))
        return isinstance(pid, int) and not isinstance(pid, bool) and str(pid) == project
    path = info.get("path_with_namespace")
    return isinstance(path, str) and path.lower() == project.lower()
