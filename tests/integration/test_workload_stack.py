"""Bring-your-own app for real: the example app's Helm chart, Kustomize base and plain manifests through a real
``pulumi up`` of a PR stack on the embedded (KWOK) cluster, a chart with a cluster-scoped object refused before
anything is created, and a chart pulling with the registry credentials the shared stack holds.

What is checked on the cluster: every rendered object is in the PR's namespace with prenv's labels, the pod
template carries the sha (a push rolls it), the placeholders were filled with the PR's values and never with the
branch or author, prenv's Ingress routes the preview host to the app's Service, and destroy leaves nothing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import psycopg
import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv import db, template
from prenv.errors import StackOperationError
from prenv.gateway import gateway_for
from prenv.model import DesiredEnvironment, PullRequest
from prenv.toolchain import cache_dir
from tests.fixtures.preview import BASE_DOMAIN, ROOT, SEED, SHARED_STACK, shared_stack, unique_pr, write_project

pytestmark = pytest.mark.integration

SHA1 = "1" * 40
SHA2 = "2" * 40
HOSTILE_BRANCH = "feat/$(curl evil){sha}"
HOSTILE_AUTHOR = "dev;drop {pr}"

CHART_VALUES = {
    "image": {"repository": "{imageRepository}", "tag": "{imageTag}"},
    "pr": "{pr}",
    "sha": "{sha}",
    "url": "{url}",
    "databaseSecret": "{databaseSecret}",
}
APPS = {
    "helm": {"kind": "helm", "chart": str(ROOT / "examples/app/chart"), "service": "web", "values": CHART_VALUES},
    "kustomize": {"kind": "kustomize", "directory": str(ROOT / "examples/app/kustomize"), "service": "web"},
    # The Kustomize base's two objects, as plain manifests (its kustomization.yaml is not one).
    "manifests": {
        "kind": "manifests",
        "files": [str(ROOT / "examples/app/kustomize/deployment.yaml"), str(ROOT / "examples/app/kustomize/s*.yaml")],
        "service": "web",
    },
}


def desired(n: int, sha: str) -> DesiredEnvironment:
    pr = PullRequest(number=n, sha=sha, branch=HOSTILE_BRANCH, base="main", author=HOSTILE_AUTHOR, title="t {url}")
    return DesiredEnvironment(pr=pr, config_hash="h")


def project(tmp_path: Path, app: dict[str, object]) -> Path:
    return write_project(
        tmp_path / "project",
        baseDomain=BASE_DOMAIN,
        database={"enabled": True, "namePrefix": "pr_", "template": SEED},
        app=app,
    )


@pytest.mark.parametrize("kind", sorted(APPS))
def test_the_example_app_deploys_into_the_pr_namespace_rolls_on_a_push_and_leaves_nothing(
    kind: str,
    tmp_path: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    gw = gateway_for(project(tmp_path, APPS[kind]), backend_url, preview_env, pulumi_root=cache_dir())
    n = unique_pr()
    ns = f"pr-{n}"
    core, apps, net = client.CoreV1Api(cluster_api), client.AppsV1Api(cluster_api), client.NetworkingV1Api(cluster_api)
    try:
        state = gw.up(desired(n, SHA1))
        assert state.url == f"http://web-{n}.{BASE_DOMAIN}"
        assert state.config_hash == template.config_hash(gw.project_dir)  # the driver sees it unchanged

        web = apps.read_namespaced_deployment("web", ns)
        assert web.status.available_replicas == 1
        assert web.metadata.labels["prenv.dev/pr"] == str(n)
        assert web.metadata.annotations["pulumi.com/patchForce"] == "true"
        assert web.spec.template.metadata.annotations["prenv.dev/sha"] == SHA1
        container = web.spec.template.spec.containers[0]
        env = {e.name: e for e in container.env}
        assert env["PRENV_PR"].value == str(n)
        assert env["PRENV_SHA"].value == SHA1
        assert env["PUBLIC_URL"].value == state.url
        assert env["DATABASE_URL"].value_from.secret_key_ref.name == "prenv-database"
        assert container.image.endswith(f":pr-{n}")  # {imageRepository}:{imageTag} or {image}

        svc = core.read_namespaced_service("web", ns)
        assert svc.metadata.annotations["pulumi.com/skipAwait"] == "true"
        ingress = net.read_namespaced_ingress("web", ns)
        assert ingress.spec.rules[0].host == f"web-{n}.{BASE_DOMAIN}"
        assert ingress.spec.rules[0].http.paths[0].backend.service.name == "web"
        assert ingress.status.load_balancer.ingress

        # Nothing of the app landed outside the PR's namespace, and no PR metadata reached an object.
        for obj in [web, svc, ingress, *apps.list_namespaced_replica_set(ns).items]:
            text = str(client.ApiClient().sanitize_for_serialization(obj))
            assert "curl" not in text and "$(" not in text and ";drop" not in text
        others = apps.list_deployment_for_all_namespaces(label_selector=f"prenv.dev/pr={n}").items
        assert {d.metadata.namespace for d in others} == {ns}
        pods = core.list_pod_for_all_namespaces(label_selector=f"prenv.dev/pr={n}").items  # what the diagnosis reads
        assert pods and {p.metadata.annotations["prenv.dev/sha"] for p in pods} == {SHA1}

        state = gw.up(desired(n, SHA2))
        assert state.sha == SHA2
        assert apps.read_namespaced_deployment("web", ns).spec.template.metadata.annotations["prenv.dev/sha"] == SHA2
    finally:
        gw.destroy(n)
    names = [i.metadata.name for i in core.list_namespace().items if i.status.phase != "Terminating"]
    assert ns not in names
    left = apps.list_deployment_for_all_namespaces(label_selector=f"prenv.dev/pr={n}").items
    assert [d.metadata.name for d in left if d.metadata.deletion_timestamp is None] == []
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, f"pr_{n}")
    assert all(s.pr != n for s in gw.list_stacks())


def test_a_chart_with_a_cluster_scoped_object_is_refused_naming_it_before_anything_is_created(
    tmp_path: Path,
    backend_url: str,
    preview_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: greedy\nversion: 0.1.0\n")
    (chart / "templates" / "role.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: greedy-admin\nrules: []\n"
    )
    gw = gateway_for(
        project(tmp_path, {"kind": "helm", "chart": str(chart)}), backend_url, preview_env, pulumi_root=cache_dir()
    )
    n = unique_pr()
    try:
        with pytest.raises(StackOperationError) as e:
            gw.up(desired(n, SHA1))
        assert "prenv:app.chart" in str(e.value)
        assert "ClusterRole/greedy-admin" in str(e.value)
        core = client.CoreV1Api(cluster_api)
        assert f"pr-{n}" not in [i.metadata.name for i in core.list_namespace().items]
        rbac = client.RbacAuthorizationV1Api(cluster_api)
        assert "greedy-admin" not in [r.metadata.name for r in rbac.list_cluster_role().items]
        with psycopg.connect(postgres.dsn) as conn:
            assert not db.database_exists(conn, f"pr_{n}")
    finally:
        gw.destroy(n)


def test_a_chart_pulls_with_the_registry_credentials_the_shared_stack_holds(
    tmp_path: Path, backend_url: str, preview_env: dict[str, str], cluster_api: client.ApiClient
) -> None:
    docker_config = json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}})
    (tmp_path / "config.json").write_text(docker_config)
    # No database in this stack, so no {databaseSecret}; the chart pulls with {pullSecret}.
    values = {k: v for k, v in CHART_VALUES.items() if k != "databaseSecret"}
    app = {**APPS["helm"], "values": {**values, "pullSecret": "{pullSecret}"}}
    project_dir = write_project(
        tmp_path / "project",
        baseDomain=BASE_DOMAIN,
        database={"enabled": False},
        image={"repository": "registry.example.com/acme/shop", "pullSecret": "regcred"},
        sharedStack=SHARED_STACK,
        app=app,
    )
    (project_dir / "Pulumi.shared.yaml").write_text(
        yaml.safe_dump({"config": {"prenv:registryAuthFile": str(tmp_path / "config.json")}})
    )
    gw = gateway_for(project_dir, backend_url, preview_env, pulumi_root=cache_dir())
    core, apps = client.CoreV1Api(cluster_api), client.AppsV1Api(cluster_api)
    n = unique_pr()
    with shared_stack(project_dir, backend_url, preview_env) as outputs:
        assert "pullSecretConfig" not in outputs  # a secret: never returned in plain text
        try:
            gw.up(desired(n, SHA1))
            secret = core.read_namespaced_secret("regcred", f"pr-{n}")
            assert secret.type == "kubernetes.io/dockerconfigjson"
            assert base64.b64decode(secret.data[".dockerconfigjson"]).decode() == docker_config
            pod = apps.read_namespaced_deployment("web", f"pr-{n}").spec.template.spec
            assert [s.name for s in pod.image_pull_secrets] == ["regcred"]
        finally:
            gw.destroy(n)
