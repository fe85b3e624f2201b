"""The per-PR stack for real: pulumi + the embedded cluster + PostgreSQL, through the driver's gateway.

One PR's whole life: up (namespace with quota, limits and policy; app; ingress; database the app's role can use),
a push (only the Deployment changes), and destroy (namespace, database, role and stack gone).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import psycopg
import pytest
from kubernetes import client
from pulumi import automation as auto

from devtools.localdb import LocalPostgres
from prenv import db
from prenv.gateway import gateway_for
from prenv.gateway.diy import DiyGateway
from prenv.model import DesiredEnvironment, PullRequest
from prenv.toolchain import tool_path
from tests.fixtures.preview import unique_pr

pytestmark = pytest.mark.integration

SHA1 = "1" * 40
SHA2 = "2" * 40


def desired(n: int, sha: str) -> DesiredEnvironment:
    pr = PullRequest(number=n, sha=sha, branch="feat/$(curl evil)", base="main", author="dev;drop", title="t")
    return DesiredEnvironment(pr=pr, config_hash="h")


def test_a_pr_stack_goes_up_updates_only_its_deployment_on_a_push_and_leaves_nothing_after_destroy(
    gateway: DiyGateway,
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
    project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
) -> None:
    n = unique_pr()
    ns_name, db_name = f"pr-{n}", f"pr_{n}"
    core, apps = client.CoreV1Api(cluster_api), client.AppsV1Api(cluster_api)
    net = client.NetworkingV1Api(cluster_api)

    state = gateway.up(desired(n, SHA1))
    assert state.url == f"http://web-{n}.preview.test"
    assert state.sha == SHA1

    ns = core.read_namespace(ns_name)
    assert ns.metadata.labels["prenv.dev/pr"] == str(n)
    assert ns.metadata.labels["prenv.dev/author"] == "dev-drop"
    assert core.read_namespaced_resource_quota("prenv-quota", ns_name).spec.hard["pods"] == "20"
    assert core.read_namespaced_limit_range("prenv-limits", ns_name).spec.limits[0].default["memory"] == "512Mi"
    assert net.read_namespaced_network_policy("prenv-isolation", ns_name).spec.policy_types == ["Ingress"]
    web = apps.read_namespaced_deployment("web", ns_name)
    assert web.status.available_replicas == 1
    ingress = net.read_namespaced_ingress("web", ns_name)
    assert ingress.spec.rules[0].host == f"web-{n}.preview.test"
    assert ingress.status.load_balancer.ingress

    # The app's credentials work, from the Secret the Deployment reads, on a branch of the seed.
    url = base64.b64decode(core.read_namespaced_secret("prenv-database", ns_name).data["DATABASE_URL"]).decode()
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (2,)

    # A push: the preview of the new sha changes the Deployment and nothing else.
    ws = auto.LocalWorkspace(
        work_dir=str(project_dir),
        env_vars={**preview_env, "PULUMI_BACKEND_URL": backend_url},
        pulumi_command=auto.PulumiCommand(root=str(tool_path("pulumi").parent.parent)),
    )
    stack = auto.Stack.select(f"pr-{n}", ws)
    stack.set_config("prenv:sha", auto.ConfigValue(SHA2))
    preview = stack.preview(color="never")
    changed = {k: v for k, v in preview.change_summary.items() if k != "same"}
    assert changed == {"update": 2}, preview.change_summary  # the web and worker Deployments
    steps = [e.resource_pre_event.metadata for e in _events(stack) if e.resource_pre_event]
    updated = {m.type for m in steps if m.op == "update" and not m.type.startswith("pulumi:providers:")}
    assert updated == {"kubernetes:apps/v1:Deployment"}

    state = gateway.up(desired(n, SHA2))
    assert state.sha == SHA2
    template = apps.read_namespaced_deployment("web", ns_name).spec.template
    assert template.metadata.annotations["prenv.dev/sha"] == SHA2

    # The plain CLI sees the driver's stack.
    cli_env = {**preview_env, "PULUMI_BACKEND_URL": backend_url}
    listed = subprocess.run(
        [str(tool_path("pulumi")), "stack", "ls", "--json"],
        cwd=project_dir,
        env=cli_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'"pr-{n}"' in listed.stdout
    out = subprocess.run(
        [str(tool_path("pulumi")), "stack", "output", "url", "-s", f"pr-{n}"],
        cwd=project_dir,
        env=cli_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"http://web-{n}.preview.test"

    gateway.destroy(n)
    names = [i.metadata.name for i in core.list_namespace().items if i.status.phase != "Terminating"]
    assert ns_name not in names
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, db_name)
        assert not db.role_exists(conn, db_name)
    assert all(s.pr != n for s in gateway.list_stacks())
    gateway.destroy(n)  # destroying a stack that is gone is not an error


def _events(stack: auto.Stack) -> list[auto.EngineEvent]:
    events: list[auto.EngineEvent] = []
    stack.preview(color="never", on_event=events.append)
    return events


def test_an_unreachable_database_server_fails_the_up_clearly_and_creates_nothing_in_the_cluster(
    project_dir: Path, backend_url: str, preview_env: dict[str, str], cluster_api: client.ApiClient
) -> None:
    from prenv.errors import StackOperationError
    from prenv.toolchain import cache_dir

    env = {**preview_env, "PRENV_DATABASE_ADMIN_DSN": "postgresql://admin:hunter2@127.0.0.1:1/postgres"}
    gw = gateway_for(project_dir, backend_url, env, pulumi_root=cache_dir())
    n = unique_pr()
    with pytest.raises(StackOperationError) as e:
        gw.up(desired(n, SHA1))
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in str(e.value)
    assert "hunter2" not in str(e.value)
    names = [i.metadata.name for i in client.CoreV1Api(cluster_api).list_namespace().items]
    assert f"pr-{n}" not in names
    gw.destroy(n)
    assert all(s.pr != n for s in gw.list_stacks())


def test_the_template_stack_is_not_deployable_and_says_what_to_run(
    project_dir: Path, backend_url: str, preview_env: dict[str, str]
) -> None:
    env = {**preview_env, "PULUMI_BACKEND_URL": backend_url}
    pulumi = str(tool_path("pulumi"))
    subprocess.run([pulumi, "stack", "init", "preview"], cwd=project_dir, env=env, check=True, capture_output=True)
    run = subprocess.run(
        [pulumi, "up", "--yes", "-s", "preview", "--color", "never"],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "'preview' is the template for PR stacks and is not deployable" in run.stdout + run.stderr
    assert "prenv up --pr" in run.stdout + run.stderr


def test_invalid_config_fails_before_any_resource_naming_the_key(
    project_dir: Path, backend_url: str, preview_env: dict[str, str]
) -> None:
    env = {**preview_env, "PULUMI_BACKEND_URL": backend_url}
    pulumi = str(tool_path("pulumi"))
    n = unique_pr()
    subprocess.run([pulumi, "stack", "init", f"pr-{n}"], cwd=project_dir, env=env, check=True, capture_output=True)
    subprocess.run([pulumi, "config", "set", "prenv:sha", SHA1, "-s", f"pr-{n}"], cwd=project_dir, env=env, check=True)
    subprocess.run(
        [pulumi, "config", "set", "--path", "prenv:quota.cpu", "lots", "-s", f"pr-{n}"],
        cwd=project_dir,
        env=env,
        check=True,
    )
    run = subprocess.run(
        [pulumi, "up", "--yes", "-s", f"pr-{n}", "--color", "never"],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "invalid configuration: prenv:quota.cpu" in run.stdout + run.stderr
    assert "created" not in run.stdout.lower().split("resources:")[-1]
