"""Hostile PR metadata, isolation between PRs, and forks — on real environments listed from the fake GitHub.

One deployment serves every check here: PRs whose branch, title and author carry shell, SQL, YAML,
Markdown/HTML, unicode and 255-character payloads are listed by the driver's GitHub source, deployed by the real
reconciler (pulumi, the embedded cluster, PostgreSQL) inside the service, which tells each PR through the fake
GitHub (one comment, Deployments). Records with newlines or escape sequences must be skipped without being echoed;
a fork PR must not be deployed unless ``allow_forks`` says so.

Then: every name is the PR number's, labels are valid label values, nothing ran (canary file) or was injected (SQL,
stack config), comments show the PR's text only inside code spans; PR A's role cannot open PR B's database; every
namespace has its quota, limit range and network policy. Finally every PR closes: what is left of them (namespaces,
databases, roles, stacks, locks, pending operations) and the pulumi processes still running are counted for the
hostile-metadata row, and the four records are written once all of that is known.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from github import Auth
from kubernetes import client
from psycopg.conninfo import conninfo_to_dict

from devtools.localdb import LocalPostgres
from prenv import db, driver, naming, settings
from prenv.cluster import ClusterInfo
from prenv.model import ActionKind
from prenv.service.feedback import GitHubFeedback, code_span
from prenv.service.service import Service, ServiceOptions, Wiring
from prenv.toolchain import pulumi_env
from tests.fixtures.preview import SEED, unique_pr, write_project
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR, CollectingHandler
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.chaos]

REPO = "octo/shop"
CANARY = Path(f"/tmp/prenv-reliability-pwned-{os.getpid()}")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DB_NAME = re.compile(r"^[a-z0-9_]+$")

# Attacker-controlled metadata, one family per field so that every field meets every kind of payload.
DEPLOYED: list[dict[str, str]] = [
    {
        "branch": f"x$(touch {CANARY});`touch {CANARY}`|id&&rm -rf /",
        "title": "Robert'); DROP TABLE products;-- ' OR 1=1 --",
        "author": "{prenv:baseDomain: evil.example}",
    },
    {
        "branch": "'; DROP DATABASE postgres; --",
        "title": f"!!python/object/apply:os.system ['touch {CANARY}'] &a *a {{{{ .Values }}}}",
        "author": "eve`id`<script>",
    },
    {
        "branch": "fëature/ünïcødé-😀-\u202egnp.exe-\u200b" + "ß" * 200,
        "title": "@everyone <script>alert(1)</script> [x](javascript:alert(1)) ``` **pwned** #1 " + "T" * 180,
        "author": "a" * 255,
    },
    {
        "branch": "b" * 255,
        "title": "x`](https://evil.example)<img src=x onerror=alert(1)>" + "é" * 200,
        "author": "Ωmega-ünï",
    },
]
INJECTED_LOG_LINE = "FORGED-LOG-LINE prenv: PR 1 destroyed"
SKIPPED: list[dict[str, str]] = [
    {"branch": "ok", "title": f"line\n{INJECTED_LOG_LINE}", "author": "mallory"},
    {"branch": f"\x1b[31m{INJECTED_LOG_LINE}\x1b[0m", "title": "escape", "author": "mallory"},
    {"branch": "ok", "title": "nul\x00byte", "author": f"tab\t{INJECTED_LOG_LINE}"},
]


@dataclass
class Deployment:
    fake: FakeGitHub
    service: Service
    deployed: dict[int, dict[str, str]]
    skipped: list[int]
    fork: int
    project_dir: Path
    state_dir: Path
    config: Path
    admin_dsn: str
    core: client.CoreV1Api
    logs: list[str]


@pytest.fixture
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
    seed_database: str,
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("hostile")
    project = write_project(
        root / "project", baseDomain="preview.test", database={"enabled": True, "namePrefix": "pr_", "template": SEED}
    )
    backend = root / "state"
    backend.mkdir()
    config = root / "prenv.yaml"
    with FakeGitHub() as fake, pytest.MonkeyPatch.context() as mp:
        config.write_text(
            yaml.safe_dump(
                {
                    "project_dir": str(project),
                    "source": {"type": "github", "github": {"repository": REPO, "base_url": fake.base_url}},
                    "filters": {"labels": ["preview"]},
                    "state": {"backend": f"file://{backend}"},
                }
            )
        )
        for key, value in {
            **pulumi_env(),
            "KUBECONFIG": str(cluster.kubeconfig),
            "PRENV_DATABASE_ADMIN_DSN": postgres.dsn,
            "PULUMI_CONFIG_PASSPHRASE": harness.PASSPHRASE,
            "GITHUB_TOKEN": harness.GITHUB_TOKEN,
        }.items():
            mp.setenv(key, value)
        deployed = {unique_pr(): meta for meta in DEPLOYED}
        skipped = [unique_pr() for _ in SKIPPED]
        fork = unique_pr()
        for n, meta in deployed.items():
            fake.add_pull(REPO, n, labels=["preview"], **meta)
        for n, meta in zip(skipped, SKIPPED, strict=True):
            fake.add_pull(REPO, n, labels=["preview"], **meta)
        fake.add_pull(REPO, fork, labels=["preview"], fork=True, author="forker", branch="main")
        parts = driver.build_parts(settings.load(config))
        wiring = Wiring.around(parts.gateway, parts.source)
        reconciler = driver.build_reconciler(
            parts, gateway=wiring.gateway, source=wiring.source, on_outcome=wiring.outcomes
        )
        feedback = GitHubFeedback(
            REPO, Auth.Token(harness.GITHUB_TOKEN), base_url=fake.base_url, seconds_between_requests=None
        )
        service = Service(reconciler, wiring, secret=SECRET, options=ServiceOptions(repository=REPO), feedback=feedback)
        logs: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                logs.append(record.getMessage())

        handlers = [CollectingHandler(COLLECTOR, "hostile deployment"), Keep()]
        for h in handlers:
            logging.getLogger().addHandler(h)
        logging.getLogger("prenv").setLevel(logging.DEBUG)
        try:
            result = service.reconciler.sync()
            for o in result.outcomes:
                COLLECTOR.expose("outcome error", o.error)
            assert all(o.ok for o in result.outcomes), [o.error for o in result.outcomes]
            yield Deployment(
                fake,
                service,
                deployed,
                skipped,
                fork,
                project,
                backend,
                config,
                postgres.dsn,
                client.CoreV1Api(cluster_api),
                logs,
            )
        finally:
            for n in [*deployed, fork]:
                fake.close_pull(REPO, n)
            for n in skipped:
                fake.close_pull(REPO, n)
            service.reconciler.sync()
            repo = fake.repo(REPO)
            for comments in repo.comments.values():
                for c in comments:
                    COLLECTOR.expose("PR comment", c["body"])
            for statuses in repo.statuses.values():
                for s in statuses:
                    COLLECTOR.expose("deployment status", s.get("description"))
            for h in handlers:
                logging.getLogger().removeHandler(h)
            feedback.close()


Figures = dict[str, Any]
"""A check's record (harness.record's arguments), written by the test once every check has run and the deployment's
PRs are destroyed, with the leftovers, pending operations and processes measured then."""


def _figures(check: str, title: str, **values: Any) -> Figures:
    return {"check": check, "title": title, **values}


def _comments(fake: FakeGitHub, n: int) -> list[str]:
    return [c["body"] for c in fake.repo(REPO).comments.get(n, [])]


def _spans_only(line: str, prefix: str, text: str) -> bool:
    return line == f"{prefix} {code_span(text)}"


def _all_labels(core: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> dict[str, str]:
    out: dict[str, str] = {}
    out.update(core.read_namespace(ns).metadata.labels or {})
    for d in apps.list_namespaced_deployment(ns).items:
        out.update(d.metadata.labels or {})
        out.update({f"annotation:{k}": v for k, v in (d.spec.template.metadata.annotations or {}).items()})
    for s in core.list_namespaced_service(ns).items:
        out.update(s.metadata.labels or {})
    return out


def check_hostile_metadata(deployment: Deployment) -> tuple[list[str], Figures]:
    """Valid names, nothing run or injected, PR text escaped in comments; returns the problems found and the figures
    of its record (the test adds the leftovers once the PRs are closed)."""
    d = deployment
    apps = client.AppsV1Api(d.core.api_client)
    problems: list[str] = []
    checks = 0
    for n, meta in d.deployed.items():
        ns = f"pr-{n}"
        checks += 1
        if not harness.namespace_exists(d.core, ns):
            problems.append(f"{ns}: no namespace")
            continue
        names = {x.metadata.name for x in apps.list_namespaced_deployment(ns).items}
        if names != {"web", "worker"}:
            problems.append(f"{ns}: deployments {sorted(names)}")
        for key, value in _all_labels(d.core, apps, ns).items():
            checks += 1
            if not key.startswith("annotation:") and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                problems.append(f"{ns}: label {key} is not a valid label value")
        database, role = harness.branch_exists(d.admin_dsn, f"pr_{n}")
        if not (database and role):
            problems.append(f"pr_{n}: database {database}, role {role}")
        stack_config = yaml.safe_load((d.project_dir / f"Pulumi.pr-{n}.yaml").read_text())["config"]
        checks += 1
        if set(stack_config) - {
            "prenv:pr",
            "prenv:sha",
            "prenv:branch",
            "prenv:author",
            "prenv:asleep",  # "true"/"false": whether it sleeps (prenv.sleep), never PR text
            "prenv:createdAt",
        }:
            problems.append(f"pr-{n}: unexpected stack config keys {sorted(stack_config)}")
        for key in ("prenv:branch", "prenv:author"):
            if not _LABEL_VALUE.match(str(stack_config.get(key, ""))):
                problems.append(f"pr-{n}: {key} is not sanitised")
        bodies = _comments(d.fake, n)
        if len(bodies) != 1:
            problems.append(f"pr-{n}: {len(bodies)} comments instead of one")
            continue
        lines = bodies[0].splitlines()
        checks += 1
        branch_line = next((ln for ln in lines if ln.startswith("- **Branch:**")), "")
        title_line = next((ln for ln in lines if ln.startswith("- **Title:**")), "")
        if not _spans_only(branch_line, "- **Branch:**", meta["branch"]):
            problems.append(f"pr-{n}: branch not shown as one code span: {branch_line[:80]!r}")
        if not _spans_only(title_line, "- **Title:**", meta["title"]):
            problems.append(f"pr-{n}: title not shown as one code span: {title_line[:80]!r}")
        outside = "\n".join(ln for ln in lines if ln not in (branch_line, title_line))
        for marker in ("<script", "@everyone", "javascript:", "evil.example", "DROP "):
            if marker in outside:
                problems.append(f"pr-{n}: {marker!r} outside a code span")
        if len(lines) > 12:
            problems.append(f"pr-{n}: comment has {len(lines)} lines (PR text added lines)")
    for n in d.skipped:
        checks += 1
        if harness.namespace_exists(d.core, f"pr-{n}") or d.fake.repo(REPO).comments.get(n):
            problems.append(f"PR {n} with control characters was deployed or commented")
    checks += 1
    if CANARY.exists():
        problems.append("a payload ran: the canary file exists")
    with psycopg.connect(d.admin_dsn) as conn:
        checks += 1
        if not db.database_exists(conn, "postgres"):
            problems.append("the postgres database is gone")
        bad = [str(r[0]) for r in conn.execute("SELECT datname FROM pg_database") if not _DB_NAME.match(str(r[0]))]
        bad += [str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles") if not _DB_NAME.match(str(r[0]))]
        if bad:
            problems.append(f"databases or roles with unexpected names: {bad[:5]}")
    with psycopg.connect(d.admin_dsn.rsplit("/", 1)[0] + f"/{SEED}") as conn:
        checks += 1
        if conn.execute("SELECT count(*) FROM products").fetchone() != (2,):
            problems.append("the seed's products table changed")
    # A forged log line needs the raw control character in front of it; JSON-escaped PR text (PyGithub's DEBUG
    # dump of a response) cannot start a line.
    forged = [m for m in d.logs if any(c + INJECTED_LOG_LINE in m for c in ("\n", "\x1b[31m", "\t", "\r"))]
    checks += 1
    if forged:
        problems.append(f"{len(forged)} log lines echo PR text with control characters")
    figures = _figures(
        "hostile-metadata",
        "Hostile PR metadata (shell, SQL, YAML, Markdown/HTML, unicode, 255 chars, control characters)",
        trials=len(d.deployed) + len(d.skipped),
        failures=len(problems),
        order=50,
        unit="PRs",
        checks=checks,
        deployed=len(d.deployed),
        skipped_with_control_characters=len(d.skipped),
        problems=problems[:10],
    )
    return problems, figures


def check_database_isolation(deployment: Deployment) -> tuple[list[str], Figures]:
    """PR A's role cannot open PR B's database (every ordered pair), and can open its own."""
    d = deployment
    host, port = db.server_of(d.admin_dsn)
    creds: dict[int, dict[str, Any]] = {}
    for n in d.deployed:
        secret = d.core.read_namespaced_secret("prenv-database", f"pr-{n}")
        url = base64.b64decode(secret.data["DATABASE_URL"]).decode()
        info = conninfo_to_dict(url)
        COLLECTOR.register(f"PR {n} role password", str(info["password"]))
        creds[n] = info
    # With the role passwords known, what the driver wrote to disk is scanned too: stack config and checkpoints
    # must hold them (and the admin DSN) only encrypted.
    for path in [*d.project_dir.glob("Pulumi.pr-*.yaml"), *d.state_dir.rglob("*.json")]:
        COLLECTOR.expose(f"state file {path.name}", path.read_text(errors="replace"))
    allowed = denied = 0
    breaches: list[str] = []
    own_failures: list[str] = []
    for a, info in creds.items():
        for b in creds:
            try:
                conn = psycopg.connect(
                    host=host,
                    port=port,
                    user=str(info["user"]),
                    password=str(info["password"]),
                    dbname=f"pr_{b}",
                    connect_timeout=5,
                )
            except psycopg.OperationalError as e:
                COLLECTOR.expose("connection error", str(e))
                if a == b:
                    own_failures.append(f"pr_{a} cannot open its own database")
                elif "permission denied" in str(e):
                    denied += 1
                else:
                    breaches.append(f"pr_{a} -> pr_{b}: unexpected error")
                continue
            conn.close()
            if a == b:
                allowed += 1
            else:
                breaches.append(f"pr_{a} opened pr_{b}")
    pairs = len(creds) * (len(creds) - 1)
    if denied != pairs or allowed != len(creds):
        breaches.append(f"{denied} of {pairs} pairs denied, {allowed} of {len(creds)} own databases opened")
    figures = _figures(
        "isolation-databases",
        "Isolation: PR A's role opening PR B's database (all ordered pairs)",
        trials=pairs,
        failures=len(breaches) + len(own_failures),
        orphans=None,
        orphans_note="read-only check: logins only",
        pending=None,
        pending_note="read-only check",
        processes=None,
        processes_note="read-only check; the deployment's are counted in the hostile-metadata row",
        order=60,
        unit="role/database pairs",
        denied=denied,
        own_database_opened=allowed,
        problems=(breaches + own_failures)[:10],
    )
    return breaches + own_failures, figures


def check_namespace_policies(deployment: Deployment) -> tuple[list[str], Figures]:
    """Every namespace has its ResourceQuota, LimitRange and a NetworkPolicy admitting only itself and ingress."""
    d = deployment
    net = client.NetworkingV1Api(d.core.api_client)
    missing: list[str] = []
    for n in d.deployed:
        ns = f"pr-{n}"
        quotas = {q.metadata.name: q for q in d.core.list_namespaced_resource_quota(ns).items}
        limits = {q.metadata.name: q for q in d.core.list_namespaced_limit_range(ns).items}
        policies = {p.metadata.name: p for p in net.list_namespaced_network_policy(ns).items}
        if "prenv-quota" not in quotas or not quotas["prenv-quota"].spec.hard.get("pods"):
            missing.append(f"{ns}: quota")
        if "prenv-limits" not in limits:
            missing.append(f"{ns}: limit range")
        policy = policies.get("prenv-isolation")
        if policy is None:
            missing.append(f"{ns}: network policy")
            continue
        peers = [p for rule in policy.spec.ingress or [] for p in rule._from or []]
        admitted = [p.namespace_selector.match_labels for p in peers if p.namespace_selector is not None]
        if policy.spec.pod_selector.match_labels or admitted != [{"kubernetes.io/metadata.name": "ingress-nginx"}]:
            missing.append(f"{ns}: network policy admits more than the namespace and the ingress controller")
    figures = _figures(
        "isolation-namespaces",
        "Isolation: every namespace has its quota, limit range and network policy (objects present, enforcement not "
        "measured: neither KWOK nor the real node's bridge CNI enforces NetworkPolicy)",
        trials=len(d.deployed),
        failures=len(missing),
        orphans=None,
        orphans_note="read-only check: objects inspected",
        pending=None,
        pending_note="read-only check",
        processes=None,
        processes_note="read-only check; the deployment's are counted in the hostile-metadata row",
        order=61,
        unit="namespaces",
        missing=missing,
    )
    return missing, figures


def check_forks(deployment: Deployment) -> tuple[list[str], Figures]:
    """A fork PR is neither deployed nor commented by default, and is planned once ``allow_forks`` is set."""
    d = deployment
    failures: list[str] = []
    if any(s.pr == d.fork for s in d.service.gateway.list_stacks()) or harness.namespace_exists(d.core, f"pr-{d.fork}"):
        failures.append("the fork PR was deployed by default")
    if d.fake.repo(REPO).comments.get(d.fork):
        failures.append("the fork PR got a comment")
    default_plan = d.service.reconciler.sync(dry_run=True).plan
    if d.fork in [a.pr for a in default_plan.actions]:
        failures.append("the fork PR is in the default plan")
    allowing = yaml.safe_load(d.config.read_text())
    allowing["filters"]["allow_forks"] = True
    allowed = d.config.with_name("prenv-forks.yaml")
    allowed.write_text(yaml.safe_dump(allowing))
    plan = driver.build(settings.load(allowed)).reconciler.sync(dry_run=True).plan
    if plan.of(ActionKind.CREATE) != [d.fork]:
        failures.append(f"with allow_forks the plan creates {plan.of(ActionKind.CREATE)}")
    if naming.stack_name(d.fork) in {s.stack for s in d.service.gateway.list_stacks()}:
        failures.append("the fork PR has a stack")
    figures = _figures(
        "forks",
        "Fork PRs deployed without `allow_forks`",
        trials=2,
        failures=len(failures),
        orphans=None,
        orphans_note="plans only, nothing deployed",
        pending=None,
        pending_note="plans only",
        processes=None,
        processes_note="plans only; the deployment's are counted in the hostile-metadata row",
        order=62,
        unit="plans",
        failed=failures,
    )
    return failures, figures


def test_hostile_metadata_is_inert_prs_are_isolated_from_each_other_and_forks_wait_for_permission(
    deployment: Deployment,
) -> None:
    # One test, four checks: they share one deployment, which pytest-xdist would otherwise make once per worker.
    d = deployment
    checks = {
        "hostile metadata": check_hostile_metadata(d),
        "database isolation": check_database_isolation(d),
        "namespace policies": check_namespace_policies(d),
        "forks": check_forks(d),
    }
    problems = {name: found for name, (found, _) in checks.items()}

    # Then every PR closes: the hostile ones' environments must go completely, and nothing of pulumi stay running.
    prs = [*d.deployed, *d.skipped, d.fork]
    for n in prs:
        d.fake.close_pull(REPO, n)
    closed = d.service.reconciler.sync()
    gone = harness.leftovers(
        used=prs, wanted=(), core=d.core, admin_dsn=d.admin_dsn, backend=harness.backend_of(f"file://{d.state_dir}")
    )
    processes = harness.leftover_processes()
    teardown = [f"closing: {o.error}" for o in closed.outcomes if not o.ok]
    if gone.orphans() or gone.pending or gone.half_branches:
        teardown.append(f"after closing every PR: {gone}")
    if processes:
        teardown.append(f"{len(processes)} pulumi processes still running after closing every PR")
    problems["hostile metadata"] += teardown

    hostile = checks["hostile metadata"][1]
    hostile.update(
        failures=len(problems["hostile metadata"]),
        orphans=gone.orphans(),
        pending=len(gone.pending),
        processes=len(processes),
        problems=problems["hostile metadata"][:10],
        **{f"orphan_{k}": v for k, v in gone.counts().items()},
    )
    for _, figures in checks.values():
        harness.record(**figures)
    assert not any(problems.values()), problems
