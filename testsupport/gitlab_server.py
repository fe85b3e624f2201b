"""A local fake of the GitLab REST API (v4), for tests of everything that talks to GitLab through python-gitlab.

Real python-gitlab talks real HTTP to it (``url=fake.url``), so pagination (``Link`` and the ``X-Page`` family),
authentication headers, status codes and timeouts are exercised as against gitlab.com, like the fake GitHub server
(testsupport.github_server). It is stateful: projects (addressed by numeric id or URL-encoded path), merge
requests, branches, MR notes and environments (create, update, stop).

Objects are derived from the API examples in tests/data/gitlab-api/ (never edited): each MR is a deep copy with
iid, sha, branches, author, title, labels, draft, fork and timestamps set.

Failures are injected per route (a regex on ``METHOD /path``): any status, a 429 with ``Retry-After``, slow
responses, an HTML page in place of JSON, and a stopped server (connection refused). Every request is recorded.
With ``token`` set, a request without that ``PRIVATE-TOKEN`` or ``JOB-TOKEN`` gets 401.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from testsupport.fake_forge import Failure, FakeForge, Response, query_value

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "gitlab-api"
API_PREFIX = "/api/v4"
RATE_LIMIT = 2000  # GitLab.com's authenticated API limit per minute, reported in RateLimit-* headers

_TEMPLATES: dict[str, Any] = {}
_Response = Response
_q = query_value


def template(name: str) -> dict[str, Any]:
    """A fresh deep copy of the API example ``name`` (``merge_request``, ``branch``, ``project``)."""
    if name not in _TEMPLATES:
        _TEMPLATES[name] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(_TEMPLATES[name])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class FakeProject:
    id: int
    path: str
    merge_requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    environments: list[dict[str, Any]] = field(default_factory=list)


class FakeGitLab(FakeForge):
    """The fake server. Use as a context manager or call ``start()``/``stop()``.

    Args:
        token: when set, the only ``PRIVATE-TOKEN`` / ``JOB-TOKEN`` accepted (others get 401).
        host: the address to listen on (loopback by default).
    """

    thread_name = "fake-gitlab"
    api_prefix = API_PREFIX
    rate_limit_total = RATE_LIMIT
    rate_window_seconds = 60

    def __init__(self, token: str | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.token = token
        self._projects: dict[int, FakeProject] = {}

    def stop(self) -> None:
        """Stop serving and reset open connections; clients get "connection refused" until ``start()``."""
        super().stop()
        self.drop_connections()

    # --- state -------------------------------------------------------------------------------------------------

    def add_project(self, path: str, project_id: int | None = None) -> FakeProject:
        with self._lock:
            for project in self._projects.values():
                if project.path == path:
                    return project
            project = FakeProject(id=project_id or next(self._ids), path=path)
            self._projects[project.id] = project
            return project

    def project(self, path: str) -> FakeProject:
        found = self._find(path)
        assert found is not None, path
        return found

    def add_merge_request(
        self,
        path: str,
        iid: int,
        *,
        sha: str | None = None,
        branch: str | None = None,
        target: str = "main",
        author: str = "dev",
        title: str | None = None,
        labels: tuple[str, ...] | list[str] = (),
        draft: bool = False,
        fork: bool = False,
        updated_at: str | None = None,
    ) -> dict[str, Any]:
        """Open (or replace) MR ``!iid``; returns the stored JSON, which tests may mutate to malform it."""
        project = self.add_project(path)
        mr = template("merge_request")
        web = f"http://gitlab.example/{path}/-/merge_requests/{iid}"
        mr.update(
            {
                "id": next(self._ids),
                "iid": iid,
                "project_id": project.id,
                "title": title if title is not None else f"Change number {iid}",
                "state": "opened",
                "source_branch": branch or f"feature-{iid}",
                "target_branch": target,
                "source_project_id": project.id + 500_000 if fork else project.id,
                "target_project_id": project.id,
                "labels": list(labels),
                "draft": draft,
                "work_in_progress": draft,
                "sha": sha or f"{iid:040x}",
                "updated_at": updated_at or _now(),
                "reference": f"!{iid}",
                "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{path}!{iid}"},
                "web_url": web,
            }
        )
        mr["author"]["username"] = author
        with self._lock:
            project.merge_requests[iid] = mr
        return mr

    def close_merge_request(self, path: str, iid: int, state: str = "closed") -> None:
        with self._lock:
            self.project(path).merge_requests[iid]["state"] = state

    def add_branch(self, path: str, name: str, sha: str) -> dict[str, Any]:
        project = self.add_project(path)
        branch = template("branch")
        branch.update({"name": name, "default": False, "protected": False})
        branch["commit"].update({"id": sha, "short_id": sha[:8]})
        with self._lock:
            project.branches[name] = branch
        return branch

    def delete_branch(self, path: str, name: str) -> None:
        with self._lock:
            self.project(path).branches.pop(name, None)

    def notes(self, path: str, iid: int) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.project(path).notes.get(iid, []))

    def environments(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.project(path).environments)

    def _find(self, ident: str) -> FakeProject | None:
        ident = unquote(ident)
        with self._lock:
            if ident.isdigit():
                return self._projects.get(int(ident))
            return next((p for p in self._projects.values() if p.path == ident), None)

    # --- failures and the request log --------------------------------------------------------------------------

    def fail(
        self,
        route: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        times: int | None = None,
        raw: bytes | None = None,
    ) -> Failure:
        """Answer requests matching ``route`` (a regex searched in ``"METHOD /path?query"``) with ``status``."""
        failure = Failure(
            re.compile(route),
            status=status,
            body={"message": f"{status} {_REASONS.get(status, 'Error')}"},
            headers=dict(headers or {}),
            times=times,
            raw=raw,
        )
        return self._add_failure(failure)

    def rate_limit(self, route: str = r".*", *, retry_after: int = 42, times: int | None = None) -> Failure:
        """GitLab's 429 with ``Retry-After`` and the ``RateLimit-*`` headers."""
        return self.fail(
            route,
            429,
            headers={"Retry-After": str(retry_after), "RateLimit-Remaining": "0", "RateLimit-Limit": "600"},
            times=times,
        )

    # --- routing -----------------------------------------------------------------------------------------------

    def _recorded_path(self, path: str) -> str:
        return unquote(path)  # project ids are URL-encoded paths (group%2Fname)

    def _refuse(self, headers: dict[str, str]) -> _Response | None:
        if self.token is None or self.token in (headers.get("private-token"), headers.get("job-token")):
            return None
        return _Response(401, {"message": "401 Unauthorized"})

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "RateLimit-Limit": str(RATE_LIMIT),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(self.rate_reset),
        }

    def _handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Response:
        for pattern, route_method, handler in _ROUTES:
            if route_method != method:
                continue
            match = pattern.fullmatch(path)
            if match:
                project = self._find(match["project"])
                if project is None:
                    return _Response(404, {"message": "404 Project Not Found"})
                with self._lock:
                    return handler(self, project, match, query, body)
        return _Response(404, {"error": "404 Not Found"})

    def _page(self, items: list[Any], query: dict[str, list[str]], raw_path: str) -> _Response:
        per_page = min(int(_q(query, "per_page", "20")), 100)
        page = max(int(_q(query, "page", "1")), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))

        def link(p: int, rel: str) -> str:
            params = {k: v[-1] for k, v in query.items()}
            params.update({"page": str(p), "per_page": str(per_page)})
            return f'<{self.url}{API_PREFIX}{raw_path}?{urlencode(params)}>; rel="{rel}"'

        links = [link(1, "first"), link(last, "last")]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(last),
            "X-Next-Page": str(page + 1) if page < last else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        if page < last:
            links.insert(0, link(page + 1, "next"))
        if page > 1:
            links.insert(0, link(page - 1, "prev"))
        headers["Link"] = ", ".join(links)
        return _Response(200, chunk, headers)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


# --- route handlers (called with the server lock held) -------------------------------------------------------

_Handler = Callable[[FakeGitLab, FakeProject, re.Match[str], dict[str, list[str]], Any], _Response]
_ROUTES: list[tuple[re.Pattern[str], str, _Handler]] = []
_PROJECT = r"/projects/(?P<project>[^/]+)"


def _route(method: str, pattern: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        _ROUTES.append((re.compile(_PROJECT + pattern), method, fn))
        return fn

    return register


def _raw(project: FakeProject, rest: str) -> str:
    return f"/projects/{project.id}{rest}"


@_route("GET", "")
def _get_project(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    data = template("project")
    data.update({"id": p.id, "path_with_namespace": p.path, "path": p.path.rsplit("/", 1)[-1]})
    return _Response(200, data)


@_route("GET", "/merge_requests")
def _list_mrs(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    state = _q(q, "state", "all")
    mrs = [mr for _, mr in sorted(p.merge_requests.items()) if state == "all" or mr["state"] == state]
    if _q(q, "sort", "desc") == "desc":
        mrs.reverse()
    return gl._page(copy.deepcopy(mrs), q, _raw(p, "/merge_requests"))


@_route("GET", r"/repository/branches")
def _list_branches(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    branches = [branch for _, branch in sorted(p.branches.items())]
    return gl._page(copy.deepcopy(branches), q, _raw(p, "/repository/branches"))


def _note_json(note_id: int, iid: int, text: str) -> dict[str, Any]:
    now = _now()
    return {
        "id": note_id,
        "type": None,
        "body": text,
        "attachment": None,
        "author": {"id": 1, "username": "prenv-bot", "name": "prenv", "state": "active"},
        "created_at": now,
        "updated_at": now,
        "system": False,
        "noteable_id": 99,
        "noteable_type": "MergeRequest",
        "noteable_iid": iid,
        "resolvable": False,
        "confidential": False,
        "internal": False,
    }


@_route("GET", r"/merge_requests/(?P<iid>\d+)/notes")
def _list_notes(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    iid = int(m["iid"])
    if iid not in p.merge_requests:
        return _Response(404, {"message": "404 Not found"})
    notes = list(p.notes.get(iid, []))
    if _q(q, "sort", "desc") == "desc":
        notes.reverse()
    return gl._page(copy.deepcopy(notes), q, _raw(p, f"/merge_requests/{iid}/notes"))


@_route("POST", r"/merge_requests/(?P<iid>\d+)/notes")
def _create_note(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    iid = int(m["iid"])
    if iid not in p.merge_requests:
        return _Response(404, {"message": "404 Not found"})
    if not isinstance(b, dict) or not isinstance(b.get("body"), str) or not b["body"]:
        return _Response(400, {"message": "400 Bad request - body is missing"})
    note = _note_json(next(gl._ids), iid, b["body"])
    p.notes.setdefault(iid, []).append(note)
    return _Response(201, copy.deepcopy(note))


@_route("PUT", r"/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)")
def _edit_note(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    found = [n for n in p.notes.get(int(m["iid"]), []) if n["id"] == int(m["id"])]
    if not found:
        return _Response(404, {"message": "404 Not found"})
    if not isinstance(b, dict) or not isinstance(b.get("body"), str):
        return _Response(400, {"message": "400 Bad request"})
    found[0].update({"body": b["body"], "updated_at": _now()})
    return _Response(200, copy.deepcopy(found[0]))


@_route("DELETE", r"/merge_requests/(?P<iid>\d+)/notes/(?P<id>\d+)")
def _delete_note(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    notes = p.notes.get(int(m["iid"]), [])
    found = [n for n in notes if n["id"] == int(m["id"])]
    if not found:
        return _Response(404, {"message": "404 Not found"})
    notes.remove(found[0])
    return _Response(204, None)


def _environment_json(env_id: int, name: str, url: str | None) -> dict[str, Any]:
    now = _now()
    return {
        "id": env_id,
        "name": name,
        "slug": re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:17] + f"-{env_id:06d}"[-7:],
        "description": None,
        "external_url": url,
        "state": "available",
        "tier": "development",
        "created_at": now,
        "updated_at": now,
        "enable_advanced_logs_querying": False,
        "logs_api_path": None,
        "auto_stop_at": None,
        "kubernetes_namespace": None,
        "flux_resource_path": None,
        "auto_stop_setting": "always",
    }


@_route("GET", "/environments")
def _list_envs(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    name = _q(q, "name", "")
    envs = [e for e in p.environments if not name or e["name"] == name]
    return gl._page(copy.deepcopy(envs), q, _raw(p, "/environments"))


@_route("POST", "/environments")
def _create_env(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    if not isinstance(b, dict) or not isinstance(b.get("name"), str):
        return _Response(400, {"message": "400 Bad request - name is missing"})
    if any(e["name"] == b["name"] for e in p.environments):
        return _Response(400, {"message": {"name": ["has already been taken"]}})
    env = _environment_json(next(gl._ids), b["name"], b.get("external_url"))
    env["tier"] = b.get("tier", "development")
    p.environments.append(env)
    return _Response(201, copy.deepcopy(env))


@_route("PUT", r"/environments/(?P<id>\d+)")
def _update_env(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    found = [e for e in p.environments if e["id"] == int(m["id"])]
    if not found:
        return _Response(404, {"message": "404 Not found"})
    if isinstance(b, dict) and "external_url" in b:
        found[0]["external_url"] = b["external_url"]
    found[0]["updated_at"] = _now()
    return _Response(200, copy.deepcopy(found[0]))


@_route("POST", r"/environments/(?P<id>\d+)/stop")
def _stop_env(gl: FakeGitLab, p: FakeProject, m: re.Match[str], q: dict[str, list[str]], b: Any) -> _Response:
    found = [e for e in p.environments if e["id"] == int(m["id"])]
    if not found:
        return _Response(404, {"message": "404 Not found"})
    found[0].update({"state": "stopped", "updated_at": _now()})
    return _Response(200, copy.deepcopy(found[0]))
