"""A local fake of the GitHub REST API, for tests of everything that talks to GitHub through PyGithub.

Real PyGithub talks real HTTP to it (``base_url=fake.base_url``), so pagination, headers, status codes and
timeouts are exercised exactly as against github.com, as Argo CD's provider tests do with ``httptest``. It is
stateful and shared by features: pull requests (listing with ``Link`` pagination) and their changed files,
branches, labels, issue comments (prenv's and other users', with their ``author_association``), deployments and
their statuses, ``/rate_limit``, and GitHub App installation tokens.

PR objects are derived from the real webhook payload in tests/data/github-webhooks/opened.json (never
edited): each PR is a deep copy with number, sha, branches, author, title, labels, draft, fork and timestamps set.

Failures are injected per route (a regex on method and path): any status (404, 5xx), a 403 rate limit with
``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``, slow responses (client timeouts), and a stopped server
(connection refused). Every request is recorded, so tests can count calls.

The server serves the API both at the root (github.com style) and under ``/api/v3`` (GitHub Enterprise style);
``base_url`` is the Enterprise form so the Enterprise code path is the one tested.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from testsupport.fake_forge import Failure, FakeForge, Response, query_value

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "github-webhooks"  # copied from shared/fixtures
API_PREFIX = "/api/v3"
RATE_LIMIT = 5000

_PR_TEMPLATE_CACHE: dict[str, Any] = {}
_Response = Response
_q = query_value


def pr_template() -> dict[str, Any]:
    """The real PR object from the ``opened`` webhook payload (a fresh deep copy each call)."""
    if not _PR_TEMPLATE_CACHE:
        payload = json.loads((FIXTURES / "opened.json").read_text(encoding="utf-8"))
        _PR_TEMPLATE_CACHE.update(payload["pull_request"])
    return copy.deepcopy(_PR_TEMPLATE_CACHE)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # name -> head sha
    files: dict[int, list[str]] = field(default_factory=dict)  # PR -> changed paths

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class FakeGitHub(FakeForge):
    """The fake server. Use as a context manager or call ``start()``/``stop()``."""

    thread_name = "fake-github"
    api_prefix = API_PREFIX
    rate_limit_total = RATE_LIMIT
    methods = ("GET", "POST", "PATCH", "PUT", "DELETE")

    def __init__(self, host: str = "127.0.0.1") -> None:
        """``host``: the address to listen on (loopback; the real node's bridge address to be reached from pods)."""
        super().__init__(host)
        self._repos: dict[str, FakeRepo] = {}
        self.installation_tokens: dict[int, str] = {}

    @property
    def base_url(self) -> str:
        """What to pass to PyGithub as ``base_url`` (GitHub Enterprise form)."""
        return self.url + API_PREFIX

    # --- state -------------------------------------------------------------------------------------------------

    def add_repo(self, full_name: str) -> FakeRepo:
        owner, name = full_name.split("/", 1)
        with self._lock:
            repo = self._repos.get(full_name)
            if repo is None:
                repo = FakeRepo(owner=owner, name=name, id=next(self._ids))
                self._repos[full_name] = repo
            return repo

    def repo(self, full_name: str) -> FakeRepo:
        return self._repos[full_name]

    def add_pull(
        self,
        full_name: str,
        number: int,
        *,
        sha: str | None = None,
        branch: str | None = None,
        base: str = "main",
        author: str = "octocat",
        title: str | None = None,
        labels: tuple[str, ...] | list[str] = (),
        draft: bool = False,
        fork: bool = False,
        deleted_fork: bool = False,
        updated_at: str | None = None,
    ) -> dict[str, Any]:
        """Open (or replace) PR ``number``; returns the stored JSON, which tests may mutate to malform it."""
        repo = self.add_repo(full_name)
        pr = pr_template()
        sha = sha or f"{number:040x}"
        branch = branch or f"feature-{number}"
        api = f"{self.base_url}/repos/{full_name}"
        pr.update(
            {
                "number": number,
                "id": next(self._ids),
                "url": f"{api}/pulls/{number}",
                "issue_url": f"{api}/issues/{number}",
                "comments_url": f"{api}/issues/{number}/comments",
                "html_url": f"https://github.example/{full_name}/pull/{number}",
                "title": title if title is not None else f"Change number {number}",
                "state": "open",
                "draft": draft,
                "updated_at": updated_at or _now(),
                "labels": [self._label(repo, name) for name in labels],
            }
        )
        pr["user"]["login"] = author
        base_repo = self._repo_json(repo)
        if deleted_fork:
            head_repo: dict[str, Any] | None = None
        elif fork:
            head_repo = self._repo_json(FakeRepo(owner=author, name=repo.name, id=repo.id + 500_000))
        else:
            head_repo = base_repo
        pr["head"].update({"ref": branch, "sha": sha, "label": f"{author}:{branch}", "repo": head_repo})
        pr["base"].update({"ref": base, "label": f"{repo.owner}:{base}", "repo": base_repo})
        pr["base"]["sha"] = "0" * 40
        with self._lock:
            repo.pulls[number] = pr
        return pr

    def add_branch(self, full_name: str, name: str, sha: str) -> None:
        """Create (or move) branch ``name`` to ``sha``."""
        repo = self.add_repo(full_name)
        with self._lock:
            repo.branches[name] = sha

    def delete_branch(self, full_name: str, name: str) -> None:
        with self._lock:
            self._repos[full_name].branches.pop(name, None)

    def set_files(self, full_name: str, number: int, paths: list[str]) -> None:
        """What ``GET /pulls/<n>/files`` lists for PR ``number``."""
        repo = self.add_repo(full_name)
        with self._lock:
            repo.files[number] = list(paths)

    def add_comment(
        self, full_name: str, number: int, body: str, *, login: str = "maintainer", association: str = "MEMBER"
    ) -> dict[str, Any]:
        """A comment by a user (not prenv) on PR ``number``, as GitHub stores it; returns its JSON."""
        repo = self.add_repo(full_name)
        with self._lock:
            comment = _comment_json(self, repo, number, next(self._ids), body)
            comment["user"] = {"login": login, "id": next(self._ids), "type": "User"}
            comment["author_association"] = association
            repo.comments.setdefault(number, []).append(comment)
            return copy.deepcopy(comment)

    def close_pull(self, full_name: str, number: int) -> None:
        with self._lock:
            self._repos[full_name].pulls[number]["state"] = "closed"

    def _label(self, repo: FakeRepo, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in repo.labels:
                repo.labels[name] = {
                    "id": next(self._ids),
                    "url": f"{self.base_url}/repos/{repo.full_name}/labels/{name}",
                    "name": name,
                    "color": "ededed",
                    "default": False,
                    "description": None,
                }
            return dict(repo.labels[name])

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        data: dict[str, Any] = copy.deepcopy(pr_template()["base"]["repo"])
        data.update(
            {
                "id": repo.id,
                "name": repo.name,
                "full_name": repo.full_name,
                "url": f"{self.base_url}/repos/{repo.full_name}",
            }
        )
        data["owner"]["login"] = repo.owner
        return data

    # --- failures ----------------------------------------------------------------------------------------------

    def fail(
        self,
        route: str,
        status: int,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> Failure:
        """Answer requests matching ``route`` with ``status``.

        ``route`` is a regex searched in ``"METHOD /path"``, or ``"METHOD /path?query"`` when there is a query
        string (without the ``/api/v3`` prefix), e.g. ``r"GET /repos/o/r/pulls\\?.*\\bpage=2\\b"``.
        """
        failure = Failure(
            route=re.compile(route),
            status=status,
            body={"message": message or _REASONS.get(status, "Error"), "documentation_url": "https://docs"},
            headers=dict(headers or {}),
            times=times,
        )
        return self._add_failure(failure)

    def rate_limit(self, route: str = r".*", *, reset_in: int = 120, times: int | None = None) -> Failure:
        """Answer with GitHub's primary rate-limit 403: remaining 0, reset ``reset_in`` seconds from now."""
        reset = int(time.time()) + reset_in
        return self.fail(
            route,
            403,
            message="API rate limit exceeded for 127.0.0.1.",
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
            times=times,
        )

    # --- routing -----------------------------------------------------------------------------------------------

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(self.rate_reset),
            "X-RateLimit-Used": str(RATE_LIMIT - remaining),
            "X-GitHub-Media-Type": "github.v3; format=json",
        }

    def _handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Response:
        for pattern, route_method, handler in _ROUTES:
            if route_method != method:
                continue
            match = pattern.fullmatch(path)
            if match:
                with self._lock:
                    return handler(self, match, query, body)
        return _Response(404, {"message": "Not Found", "documentation_url": "https://docs"})

    def _repo_or_404(self, match: re.Match[str]) -> FakeRepo | None:
        return self._repos.get(f"{match['owner']}/{match['repo']}")

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> _Response:
        per_page = min(int(_q(query, "per_page", "30")), 100)
        page = max(int(_q(query, "page", "1")), 1)
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(p: int, rel: str) -> str:
            params = {k: v[-1] for k, v in query.items()}
            params.update({"page": str(p), "per_page": str(per_page)})
            return f'<{self.base_url}{path}?{urlencode(params)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return _Response(200, chunk, headers)


_REASONS = {
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    422: "Validation Failed",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


# --- route handlers (called with the server lock held) -------------------------------------------------------

_Handler = Callable[[FakeGitHub, re.Match[str], dict[str, list[str]], Any], _Response]
_ROUTES: list[tuple[re.Pattern[str], str, _Handler]] = []
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


def _route(method: str, pattern: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        _ROUTES.append((re.compile(pattern), method, fn))
        return fn

    return register


def _not_found() -> _Response:
    return _Response(404, {"message": "Not Found", "documentation_url": "https://docs"})


@_route("GET", "/rate_limit")
def _get_rate_limit(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    core = {"limit": RATE_LIMIT, "remaining": gh.rate_remaining, "reset": gh.rate_reset, "used": 0}
    return _Response(200, {"resources": {"core": core, "search": core, "graphql": core}, "rate": core})


@_route("POST", r"/app/installations/(?P<id>\d+)/access_tokens")
def _installation_token(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    token = f"ghs_fake{m['id']}"
    gh.installation_tokens[int(m["id"])] = token
    expires = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _Response(201, {"token": token, "expires_at": expires, "permissions": {"pull_requests": "read"}})


@_route("GET", _REPO)
def _get_repo(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    return _Response(200, gh._repo_json(repo)) if repo else _not_found()


@_route("GET", _REPO + "/pulls")
def _list_pulls(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    if repo is None:
        return _not_found()
    state = _q(q, "state", "open")
    pulls = [p for _, p in sorted(repo.pulls.items()) if state == "all" or p.get("state") == state]
    if _q(q, "direction", "desc" if _q(q, "sort", "created") == "created" else "asc") == "desc":
        pulls.reverse()
    return gh._page(copy.deepcopy(pulls), q, f"/repos/{repo.full_name}/pulls")


@_route("GET", _REPO + r"/pulls/(?P<n>\d+)/files")
def _list_files(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    number = int(m["n"])
    if repo is None or number not in repo.pulls:
        return _not_found()
    files = [
        {"sha": "0" * 40, "filename": path, "status": "modified", "additions": 1, "deletions": 0, "changes": 1}
        for path in repo.files.get(number, [])
    ]
    return gh._page(files, q, f"/repos/{repo.full_name}/pulls/{number}/files")


@_route("GET", _REPO + "/branches")
def _list_branches(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    if repo is None:
        return _not_found()
    api = f"{gh.base_url}/repos/{repo.full_name}"
    branches = [
        {"name": name, "commit": {"sha": sha, "url": f"{api}/commits/{sha}"}, "protected": False}
        for name, sha in sorted(repo.branches.items())
    ]
    return gh._page(branches, q, f"/repos/{repo.full_name}/branches")


@_route("GET", _REPO + r"/pulls/(?P<n>\d+)")
def _get_pull(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    pr = repo.pulls.get(int(m["n"])) if repo else None
    return _Response(200, copy.deepcopy(pr)) if pr else _not_found()


@_route("GET", _REPO + r"/issues/(?P<n>\d+)")
def _get_issue(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    """A PR seen as an issue, as GitHub serves it (comments and labels hang off the issue)."""
    repo = gh._repo_or_404(m)
    pr = repo.pulls.get(int(m["n"])) if repo else None
    if repo is None or pr is None:
        return _not_found()
    issue = {
        key: copy.deepcopy(pr.get(key))
        for key in (
            "id",
            "node_id",
            "number",
            "title",
            "user",
            "labels",
            "state",
            "locked",
            "body",
            "created_at",
            "updated_at",
            "closed_at",
            "author_association",
            "draft",
        )
    }
    issue.update(
        {
            "url": pr["issue_url"],
            "html_url": pr["html_url"],
            "comments_url": pr["comments_url"],
            "repository_url": f"{gh.base_url}/repos/{repo.full_name}",
            "comments": len(repo.comments.get(pr["number"], [])),
            "pull_request": {"url": pr["url"], "html_url": pr["html_url"]},
        }
    )
    return _Response(200, issue)


@_route("GET", _REPO + r"/issues/(?P<n>\d+)/labels")
def _list_labels(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    pr = repo.pulls.get(int(m["n"])) if repo else None
    return _Response(200, copy.deepcopy(pr["labels"])) if pr else _not_found()


@_route("POST", _REPO + r"/issues/(?P<n>\d+)/labels")
def _add_labels(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    pr = repo.pulls.get(int(m["n"])) if repo else None
    if repo is None or pr is None:
        return _not_found()
    names = body.get("labels", []) if isinstance(body, dict) else body
    present = {label["name"] for label in pr["labels"]}
    pr["labels"] += [gh._label(repo, name) for name in names if name not in present]
    pr["updated_at"] = _now()
    return _Response(200, copy.deepcopy(pr["labels"]))


@_route("DELETE", _REPO + r"/issues/(?P<n>\d+)/labels/(?P<name>.+)")
def _remove_label(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    pr = repo.pulls.get(int(m["n"])) if repo else None
    name = unquote(m["name"])  # clients percent-encode the label name in the path (preview/off → preview%2Foff)
    if pr is None or not any(label["name"] == name for label in pr["labels"]):
        return _not_found()
    pr["labels"] = [label for label in pr["labels"] if label["name"] != name]
    pr["updated_at"] = _now()
    return _Response(200, copy.deepcopy(pr["labels"]))


def _comment_json(gh: FakeGitHub, repo: FakeRepo, number: int, comment_id: int, text: str) -> dict[str, Any]:
    now = _now()
    return {
        "id": comment_id,
        "node_id": f"IC_{comment_id}",
        "url": f"{gh.base_url}/repos/{repo.full_name}/issues/comments/{comment_id}",
        "html_url": f"https://github.example/{repo.full_name}/pull/{number}#issuecomment-{comment_id}",
        "issue_url": f"{gh.base_url}/repos/{repo.full_name}/issues/{number}",
        "body": text,
        "user": {"login": "prenv[bot]", "id": 1, "type": "Bot"},
        "created_at": now,
        "updated_at": now,
        "author_association": "NONE",
    }


@_route("GET", _REPO + r"/issues/(?P<n>\d+)/comments")
def _list_comments(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    if repo is None or int(m["n"]) not in repo.pulls:
        return _not_found()
    comments = repo.comments.get(int(m["n"]), [])
    return gh._page(copy.deepcopy(comments), q, f"/repos/{repo.full_name}/issues/{m['n']}/comments")


@_route("POST", _REPO + r"/issues/(?P<n>\d+)/comments")
def _create_comment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    number = int(m["n"])
    if repo is None or number not in repo.pulls:
        return _not_found()
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        return _Response(422, {"message": "Validation Failed"})
    comment = _comment_json(gh, repo, number, next(gh._ids), body["body"])
    repo.comments.setdefault(number, []).append(comment)
    return _Response(201, copy.deepcopy(comment))


def _find_comment(repo: FakeRepo, comment_id: int) -> tuple[int, dict[str, Any]] | None:
    for number, comments in repo.comments.items():
        for comment in comments:
            if comment["id"] == comment_id:
                return number, comment
    return None


@_route("GET", _REPO + r"/issues/comments/(?P<id>\d+)")
def _get_comment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    found = _find_comment(repo, int(m["id"])) if repo else None
    return _Response(200, copy.deepcopy(found[1])) if found else _not_found()


@_route("PATCH", _REPO + r"/issues/comments/(?P<id>\d+)")
def _edit_comment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    found = _find_comment(repo, int(m["id"])) if repo else None
    if found is None:
        return _not_found()
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        return _Response(422, {"message": "Validation Failed"})
    found[1].update({"body": body["body"], "updated_at": _now()})
    return _Response(200, copy.deepcopy(found[1]))


@_route("DELETE", _REPO + r"/issues/comments/(?P<id>\d+)")
def _delete_comment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    found = _find_comment(repo, int(m["id"])) if repo else None
    if repo is None or found is None:
        return _not_found()
    repo.comments[found[0]].remove(found[1])
    return _Response(204, None)


@_route("POST", _REPO + "/deployments")
def _create_deployment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    if repo is None:
        return _not_found()
    if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
        return _Response(422, {"message": "Validation Failed"})
    deployment_id = next(gh._ids)
    ref = body["ref"]
    sha = (
        ref
        if re.fullmatch(r"[0-9a-f]{40}", ref)
        else next((p["head"]["sha"] for p in repo.pulls.values() if p["head"]["ref"] == ref), "f" * 40)
    )
    now = _now()
    deployment = {
        "id": deployment_id,
        "node_id": f"DE_{deployment_id}",
        "url": f"{gh.base_url}/repos/{repo.full_name}/deployments/{deployment_id}",
        "statuses_url": f"{gh.base_url}/repos/{repo.full_name}/deployments/{deployment_id}/statuses",
        "repository_url": f"{gh.base_url}/repos/{repo.full_name}",
        "sha": sha,
        "ref": ref,
        "task": body.get("task", "deploy"),
        "payload": body.get("payload", {}),
        "environment": body.get("environment", "production"),
        "description": body.get("description"),
        "transient_environment": body.get("transient_environment", False),
        "production_environment": body.get("production_environment", False),
        "creator": {"login": "prenv[bot]", "id": 1, "type": "Bot"},
        "created_at": now,
        "updated_at": now,
    }
    repo.deployments.append(deployment)
    repo.statuses[deployment_id] = []
    return _Response(201, copy.deepcopy(deployment))


@_route("GET", _REPO + "/deployments")
def _list_deployments(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    if repo is None:
        return _not_found()
    found = [
        d
        for d in reversed(repo.deployments)  # newest first, like GitHub
        if all(_q(q, key, str(d[key])) == str(d[key]) for key in ("sha", "ref", "task", "environment"))
    ]
    return gh._page(copy.deepcopy(found), q, f"/repos/{repo.full_name}/deployments")


@_route("GET", _REPO + r"/deployments/(?P<id>\d+)")
def _get_deployment(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    found = [d for d in repo.deployments if d["id"] == int(m["id"])] if repo else []
    return _Response(200, copy.deepcopy(found[0])) if found else _not_found()


@_route("POST", _REPO + r"/deployments/(?P<id>\d+)/statuses")
def _create_status(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    deployment_id = int(m["id"])
    if repo is None or deployment_id not in repo.statuses:
        return _not_found()
    states = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
    if not isinstance(body, dict) or body.get("state") not in states:
        return _Response(422, {"message": "Validation Failed"})
    status_id = next(gh._ids)
    now = _now()
    status = {
        "id": status_id,
        "node_id": f"DES_{status_id}",
        "url": f"{gh.base_url}/repos/{repo.full_name}/deployments/{deployment_id}/statuses/{status_id}",
        "deployment_url": f"{gh.base_url}/repos/{repo.full_name}/deployments/{deployment_id}",
        "repository_url": f"{gh.base_url}/repos/{repo.full_name}",
        "state": body["state"],
        "description": body.get("description", ""),
        "environment": body.get("environment", ""),
        "environment_url": body.get("environment_url", ""),
        "log_url": body.get("log_url", ""),
        "target_url": body.get("target_url", body.get("log_url", "")),
        "creator": {"login": "prenv[bot]", "id": 1, "type": "Bot"},
        "created_at": now,
        "updated_at": now,
    }
    repo.statuses[deployment_id].insert(0, status)  # newest first, like GitHub
    if body.get("auto_inactive", True) and body["state"] == "success":
        deployment = next(d for d in repo.deployments if d["id"] == deployment_id)
        for other in repo.deployments:
            same_env = other["environment"] == deployment["environment"] and other["id"] != deployment_id
            if same_env and repo.statuses[other["id"]] and repo.statuses[other["id"]][0]["state"] == "success":
                inactive = dict(repo.statuses[other["id"]][0], id=next(gh._ids), state="inactive")
                repo.statuses[other["id"]].insert(0, inactive)
    return _Response(201, copy.deepcopy(status))


@_route("GET", _REPO + r"/deployments/(?P<id>\d+)/statuses")
def _list_statuses(gh: FakeGitHub, m: re.Match[str], q: dict[str, list[str]], body: Any) -> _Response:
    repo = gh._repo_or_404(m)
    deployment_id = int(m["id"])
    if repo is None or deployment_id not in repo.statuses:
        return _not_found()
    path = f"/repos/{repo.full_name}/deployments/{deployment_id}/statuses"
    return gh._page(copy.deepcopy(repo.statuses[deployment_id]), q, path)


if __name__ == "__main__":  # pragma: no cover
    with FakeGitHub() as fake:
        fake.add_pull("octo/demo", 1, labels=["preview"])
        print(f"fake GitHub at {fake.base_url} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
