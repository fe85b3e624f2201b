"""Least privilege that holds: real requests as the driver's ServiceAccount against the embedded cluster.

``pulumi up -s shared`` and ``-s driver`` install the RBAC and the ValidatingAdmissionPolicy of stacks/incluster.py;
the requests below carry a token of the ``prenv-driver`` ServiceAccount (TokenRequest API). The driver manages a
prenv namespace and what an environment is made of in it, once the namespace's RoleBinding (which the PR stack
creates) binds ``prenv-environment`` there; everything else is refused, by RBAC (reads, which admission never sees)
or by the policy (writes RBAC alone would allow).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from prenv import naming
from prenv.cluster import ClusterInfo
from prenv.cluster.bootstrap import api_client
from tests.fixtures.driver_stack import (
    SystemStacks,
    service_account_client,
    service_account_kubeconfig,
    system_env,
    system_namespace_cleanup,
)
from tests.fixtures.preview import BASE_DOMAIN, unique_pr, write_project

pytestmark = pytest.mark.integration

MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
POLICY_DENIAL = "ValidatingAdmissionPolicy 'prenv-driver'"


@pytest.fixture(scope="module")
def driver_installed(
    cluster: ClusterInfo, cluster_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SystemStacks]:
    """The shared and driver stacks up (destroyed afterwards), the admission policy in force."""
    root = tmp_path_factory.mktemp("driver-rbac")
    (root / "state").mkdir()
    stacks = SystemStacks(write_project(root / "project"), f"file://{root / 'state'}", system_env(cluster))
    with system_namespace_cleanup(client.CoreV1Api(cluster_api)):
        try:
            stacks.up_shared()
            stacks.up_driver()
            yield stacks
        finally:
            stacks.destroy("driver")
            stacks.destroy("shared")


@pytest.fixture(scope="module")
def driver(driver_installed: SystemStacks, cluster: ClusterInfo, cluster_api: client.ApiClient) -> Iterator[Any]:
    """An API client that is the driver's ServiceAccount, returned once the admission policy is enforced."""
    api = service_account_client(cluster_api, cluster.kubeconfig, naming.SYSTEM_NAMESPACE, "prenv-driver")
    probe = {"metadata": {"name": f"probe-{uuid.uuid4().hex[:8]}"}}
    # The policy takes effect when the API server's informer has it: a dry-run create of a foreign namespace is
    # allowed by RBAC and must come back refused by the policy.
    _eventually(lambda: _denied(lambda: client.CoreV1Api(api).create_namespace(probe, dry_run="All"), POLICY_DENIAL))
    yield api
    api.close()


@pytest.fixture
def team_namespace(cluster_api: client.ApiClient) -> Iterator[str]:
    """Another team's namespace with a Secret in it, deleted afterwards."""
    core = client.CoreV1Api(cluster_api)
    name = f"team-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_secret(name, {"metadata": {"name": "db-password"}, "stringData": {"password": "s3cret"}})
    yield name
    _delete_namespace(core, name)


@pytest.fixture
def kube_system_secret(cluster_api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(cluster_api)
    name = f"bootstrap-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_secret("kube-system", {"metadata": {"name": name}, "stringData": {"token": "t0ken"}})
    yield name
    core.delete_namespaced_secret(name, "kube-system")


@pytest.fixture
def pr_namespace(driver: Any, cluster_api: client.ApiClient) -> Iterator[str]:
    """A prenv namespace created by the driver itself, with the RoleBinding the PR stack gives it; deleted after."""
    name = naming.namespace(unique_pr())
    client.CoreV1Api(driver).create_namespace({"metadata": {"name": name, "labels": MANAGED}})
    try:
        client.RbacAuthorizationV1Api(driver).create_namespaced_role_binding(name, _binding())
        yield name
    finally:
        _delete_namespace(client.CoreV1Api(cluster_api), name)


def test_the_driver_creates_a_prenv_namespace_and_manages_an_environment_in_it(driver: Any, pr_namespace: str) -> None:
    core, apps = client.CoreV1Api(driver), client.AppsV1Api(driver)
    net, batch = client.NetworkingV1Api(driver), client.BatchV1Api(driver)
    ns = pr_namespace
    secret = {"metadata": {"name": "prenv-database", "labels": MANAGED}, "stringData": {"DATABASE_URL": "postgres://x"}}
    # RBAC picks up the new RoleBinding from its informer: the first writes may come a moment before it.
    _eventually(lambda: core.create_namespaced_secret(ns, secret))
    assert core.read_namespaced_secret("prenv-database", ns).data["DATABASE_URL"]
    core.create_namespaced_config_map(ns, {"metadata": {"name": "app"}, "data": {"k": "v"}})
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "prenv-quota"}, "spec": {"hard": {"pods": "5"}}})
    core.create_namespaced_limit_range(
        ns, {"metadata": {"name": "prenv-limits"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "1"}}]}}
    )
    labels = {"app": "web"}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "prenv.local/app:1"}]}}
    deployment = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": labels}, "template": pod}}
    apps.create_namespaced_deployment(ns, deployment)
    apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 2}})
    core.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"selector": labels, "ports": [{"port": 80}]}}
    )
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    rule = {"host": "web-1.preview.test", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    net.create_namespaced_ingress(ns, {"metadata": {"name": "web"}, "spec": {"rules": [rule]}})
    net.create_namespaced_network_policy(ns, {"metadata": {"name": "prenv-isolation"}, "spec": {"podSelector": {}}})
    job_pod = {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "prenv.local/app:1"}]}}
    batch.create_namespaced_job(ns, {"metadata": {"name": "migrate"}, "spec": {"template": job_pod}})
    # The reads pulumi-kubernetes' await logic makes, in the PR's namespace.
    core.list_namespaced_pod(ns)
    core.list_namespaced_event(ns)
    apps.list_namespaced_replica_set(ns)
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 2
    net.delete_namespaced_ingress("web", ns)
    apps.delete_namespaced_deployment("web", ns)
    core.delete_namespaced_secret("prenv-database", ns)
    core.delete_namespace(ns)  # what `prenv gc --apply` does to an orphan


def test_the_driver_creates_a_branch_environments_readable_namespace(
    driver: Any, cluster_api: client.ApiClient
) -> None:
    branch = f"release/{unique_pr()}"
    name = naming.namespace(naming.branch_number(branch), "", naming.branch_slug(branch))  # br-release-<n>-<digits>
    try:
        client.CoreV1Api(driver).create_namespace({"metadata": {"name": name, "labels": MANAGED}})
        client.RbacAuthorizationV1Api(driver).create_namespaced_role_binding(name, _binding())
        assert client.CoreV1Api(cluster_api).read_namespace(name).status.phase == "Active"
    finally:
        _delete_namespace(client.CoreV1Api(cluster_api), name)


def test_a_pr_stack_run_as_the_driver_goes_up_refreshes_and_is_destroyed(
    driver: Any, driver_installed: SystemStacks, cluster_api: client.ApiClient, tmp_path: Path
) -> None:
    """The real program with the driver's token: ``prenv-environment`` covers everything pulumi-kubernetes does in a
    PR namespace (create, await, refresh, delete). The test creates the namespace and its RoleBinding as the driver
    first, as the PR stack's first steps; the stack's Namespace then takes the namespace over (server-side apply)."""
    n = unique_pr()
    ns = naming.namespace(n)
    client.CoreV1Api(driver).create_namespace({"metadata": {"name": ns, "labels": MANAGED}})
    try:
        client.RbacAuthorizationV1Api(driver).create_namespaced_role_binding(ns, _binding())
        _eventually(lambda: client.CoreV1Api(driver).list_namespaced_secret(ns))
        project = write_project(tmp_path / "project", baseDomain=BASE_DOMAIN, database={"enabled": False})
        kubeconfig = service_account_kubeconfig(driver, tmp_path / "sa.yaml")
        as_driver = api_client(kubeconfig)  # the only credentials pulumi gets are the driver's
        assert _denied(lambda: client.CoreV1Api(as_driver).list_namespaced_secret("kube-system"), None)
        as_driver.close()
        env = {**driver_installed.env, "KUBECONFIG": str(kubeconfig)}
        (tmp_path / "state").mkdir()
        stack = SystemStacks(project, f"file://{tmp_path / 'state'}", env).stack(f"pr-{n}")
        stack.set_config("prenv:sha", auto.ConfigValue("1" * 40))
        try:
            up = stack.up(color="never", suppress_progress=True)
            assert up.outputs["url"].value == f"http://web-{n}.{BASE_DOMAIN}"
            assert client.AppsV1Api(cluster_api).read_namespaced_deployment("web", ns).status.available_replicas == 1
            stack.refresh(color="never", suppress_progress=True)  # reads every object back, Secrets included
        finally:
            stack.destroy(color="never", suppress_progress=True)
        phase = _namespace_phase(client.CoreV1Api(cluster_api), ns)
        assert phase in (None, "Terminating"), "the destroy deleted the namespace"
    finally:
        _delete_namespace(client.CoreV1Api(cluster_api), ns)


def test_the_driver_holds_its_lease_in_its_own_namespace_and_may_review_its_rights(
    driver: Any, cluster_api: client.ApiClient
) -> None:
    coordination = client.CoordinationV1Api(driver)
    name = f"prenv-test-{uuid.uuid4().hex[:8]}"
    lease = {"metadata": {"name": name}, "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}}
    coordination.create_namespaced_lease(naming.SYSTEM_NAMESPACE, lease)
    try:
        held = coordination.read_namespaced_lease(name, naming.SYSTEM_NAMESPACE)
        held.spec.holder_identity = "pod-b"
        coordination.replace_namespaced_lease(name, naming.SYSTEM_NAMESPACE, held)
        assert coordination.read_namespaced_lease(name, naming.SYSTEM_NAMESPACE).spec.holder_identity == "pod-b"
        # Nothing else in its own namespace: not even a ConfigMap.
        body = {"metadata": {"name": name}, "data": {}}
        assert _denied(
            lambda: client.CoreV1Api(driver).create_namespaced_config_map(naming.SYSTEM_NAMESPACE, body), None
        )
    finally:
        client.CoordinationV1Api(cluster_api).delete_namespaced_lease(name, naming.SYSTEM_NAMESPACE)
    # `kubectl auth can-i` works (self-reviews are not writes the policy needs to bound) and tells the truth.
    review = {"spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "kube-system"}}}
    assert client.AuthorizationV1Api(driver).create_self_subject_access_review(review).status.allowed is False


def test_the_driver_relabels_its_own_namespace(driver: Any, pr_namespace: str) -> None:
    core = client.CoreV1Api(driver)
    core.patch_namespace(pr_namespace, {"metadata": {"labels": {naming.LABEL_SHA: "2" * 40}}})
    assert core.read_namespace(pr_namespace).metadata.labels[naming.LABEL_SHA] == "2" * 40
    # ...but cannot take the label that makes it prenv's away, which would let it out of the policy's reach.
    unlabel = {"metadata": {"labels": {naming.LABEL_MANAGED_BY: None}}}
    assert _denied(lambda: core.patch_namespace(pr_namespace, unlabel), POLICY_DENIAL)


def test_a_pr_stack_run_as_the_driver_from_scratch_binds_the_drivers_rights_in_its_namespace(
    driver: Any, driver_installed: SystemStacks, cluster_api: client.ApiClient, tmp_path: Path
) -> None:
    """What the in-cluster driver does: ``pulumi up`` of a new PR with nothing prepared. The PR stack must create the
    RoleBinding ``prenv-driver`` → ``prenv-environment`` right after its namespace, before anything in it."""
    n = unique_pr()
    project = write_project(tmp_path / "project", baseDomain=BASE_DOMAIN, database={"enabled": False})
    env = {**driver_installed.env, "KUBECONFIG": str(service_account_kubeconfig(driver, tmp_path / "sa.yaml"))}
    (tmp_path / "state").mkdir()
    stack = SystemStacks(project, f"file://{tmp_path / 'state'}", env).stack(f"pr-{n}")
    stack.set_config("prenv:sha", auto.ConfigValue("1" * 40))
    try:
        stack.up(color="never", suppress_progress=True)
        binding = client.RbacAuthorizationV1Api(cluster_api).read_namespaced_role_binding("prenv-driver", f"pr-{n}")
        assert binding.role_ref.name == "prenv-environment"
    finally:
        try:
            stack.destroy(color="never", suppress_progress=True)
        finally:
            _delete_namespace(client.CoreV1Api(cluster_api), naming.namespace(n))


def _pr_name() -> str:
    return naming.namespace(unique_pr())


Denied = Callable[[Any, dict[str, str]], object]
DENIED: list[tuple[str, Denied, str | None]] = [
    (
        "read-a-secret-in-kube-system",
        lambda api, ctx: client.CoreV1Api(api).read_namespaced_secret(ctx["kube_secret"], "kube-system"),
        None,
    ),
    (
        "list-secrets-in-kube-system",
        lambda api, ctx: client.CoreV1Api(api).list_namespaced_secret("kube-system"),
        None,
    ),
    (
        "read-a-secret-in-another-teams-namespace",
        lambda api, ctx: client.CoreV1Api(api).read_namespaced_secret("db-password", ctx["team"]),
        None,
    ),
    (
        "read-the-secrets-of-its-own-namespace",
        lambda api, ctx: client.CoreV1Api(api).list_namespaced_secret(naming.SYSTEM_NAMESPACE),
        None,
    ),
    (
        "list-secrets-cluster-wide",
        lambda api, ctx: client.CoreV1Api(api).list_secret_for_all_namespaces(),
        None,
    ),
    (
        "delete-another-teams-namespace",
        lambda api, ctx: client.CoreV1Api(api).delete_namespace(ctx["team"]),
        POLICY_DENIAL,
    ),
    (
        "create-an-unlabelled-pr-namespace",
        lambda api, ctx: client.CoreV1Api(api).create_namespace({"metadata": {"name": _pr_name()}}),
        POLICY_DENIAL,
    ),
    (
        "create-a-labelled-namespace-with-a-foreign-name",
        lambda api, ctx: client.CoreV1Api(api).create_namespace(
            {"metadata": {"name": f"team-{uuid.uuid4().hex[:8]}", "labels": MANAGED}}
        ),
        POLICY_DENIAL,
    ),
    (
        "create-a-labelled-namespace-with-a-non-numeric-pr",
        lambda api, ctx: client.CoreV1Api(api).create_namespace({"metadata": {"name": "pr-abc", "labels": MANAGED}}),
        POLICY_DENIAL,
    ),
    (
        "create-a-labelled-namespace-with-a-branch-slug-but-no-digits",
        lambda api, ctx: client.CoreV1Api(api).create_namespace(
            {"metadata": {"name": "br-release-1-2", "labels": MANAGED}}
        ),
        POLICY_DENIAL,
    ),
    (
        "adopt-another-teams-namespace-by-labelling-it",
        lambda api, ctx: client.CoreV1Api(api).patch_namespace(ctx["team"], {"metadata": {"labels": MANAGED}}),
        POLICY_DENIAL,
    ),
    (
        "bind-its-environment-role-in-another-teams-namespace",
        lambda api, ctx: client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(ctx["team"], _binding()),
        POLICY_DENIAL,
    ),
    (
        "bind-its-environment-role-to-a-pr-apps-service-account",
        lambda api, ctx: client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            ctx["pr"], _binding(name="app", subject=("default", ctx["pr"]))
        ),
        POLICY_DENIAL,
    ),
    (
        "bind-cluster-admin-in-a-prenv-namespace",
        lambda api, ctx: client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            ctx["pr"], _binding(name="admin", role="cluster-admin")
        ),
        None,  # RBAC refuses the escalation before admission
    ),
    (
        "create-a-deployment-in-another-teams-namespace",
        lambda api, ctx: client.AppsV1Api(api).create_namespaced_deployment(
            ctx["team"], {"metadata": {"name": "x"}, "spec": {}}
        ),
        None,
    ),
    (
        "create-a-cluster-role",
        lambda api, ctx: client.RbacAuthorizationV1Api(api).create_cluster_role(
            {"metadata": {"name": f"x-{uuid.uuid4().hex[:6]}"}, "rules": []}
        ),
        None,
    ),
]


@pytest.mark.parametrize(("request_", "by"), [(call, by) for _, call, by in DENIED], ids=[i for i, _, _ in DENIED])
def test_the_driver_is_refused_everything_outside_prenv_namespaces(
    driver: Any,
    pr_namespace: str,
    team_namespace: str,
    kube_system_secret: str,
    cluster_api: client.ApiClient,
    request_: Denied,
    by: str | None,
) -> None:
    ctx = {"team": team_namespace, "kube_secret": kube_system_secret, "pr": pr_namespace}
    body = _denied(lambda: request_(driver, ctx), by)
    assert body is not None, "the request was allowed"
    # Nothing changed behind the refusal: the other team's namespace and secrets are intact.
    core = client.CoreV1Api(cluster_api)
    team = core.read_namespace(team_namespace)
    assert team.status.phase == "Active" and not (team.metadata.labels or {}).get(naming.LABEL_MANAGED_BY)
    assert core.read_namespaced_secret("db-password", team_namespace).data["password"]


def _binding(
    name: str = "prenv-driver",
    role: str = "prenv-environment",
    subject: tuple[str, str] = ("prenv-driver", naming.SYSTEM_NAMESPACE),
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": subject[0], "namespace": subject[1]}],
    }


def _denied(call: Callable[[], object], by: str | None) -> str | None:
    """The body of the 403 ``call`` gets (containing ``by`` when given), or None when it was allowed."""
    try:
        call()
    except ApiException as e:
        assert e.status == 403, (e.status, e.body)
        if by is not None:
            assert by in str(e.body), e.body
        return str(e.body)
    return None


def _eventually(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Repeat ``check`` until it returns something truthy (RBAC and admission informers lag their objects)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (ApiException, AssertionError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} did not succeed within {timeout} s")
        time.sleep(0.2)


def _namespace_phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespace(name).status.phase)
    except ApiException as e:
        if e.status != 404:
            raise
        return None


def _delete_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise
