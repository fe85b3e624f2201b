"""One owner per object: the shared stack owns ``prenv-system``, the driver stack only what it puts there.

Real ``pulumi up`` / ``destroy`` of both stacks on the embedded cluster: destroying either leaves the other's objects,
and the shared stack comes back over the namespace it kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from prenv import naming
from prenv.cluster import ClusterInfo
from tests.fixtures.driver_stack import SystemStacks, system_env, system_namespace_cleanup
from tests.fixtures.preview import write_project

pytestmark = pytest.mark.integration

NS = naming.SYSTEM_NAMESPACE


def _exists(read: object, *args: str) -> bool:
    try:
        read(*args)  # type: ignore[operator]
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_destroying_the_driver_or_the_shared_stack_leaves_the_others_objects(
    wildcard_project_dir: Path, cluster: ClusterInfo, cluster_api: client.ApiClient, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    stacks = SystemStacks(wildcard_project_dir, f"file://{tmp_path / 'state'}", system_env(cluster))
    core, apps = client.CoreV1Api(cluster_api), client.AppsV1Api(cluster_api)
    rbac, admission = client.RbacAuthorizationV1Api(cluster_api), client.AdmissionregistrationV1Api(cluster_api)

    def shared_objects() -> bool:
        return _exists(core.read_namespaced_secret, "wildcard-tls", NS)

    def driver_objects() -> dict[str, bool]:
        return {
            "deployment": _exists(apps.read_namespaced_deployment, "prenv-driver", NS),
            "service account": _exists(core.read_namespaced_service_account, "prenv-driver", NS),
            "secret": _exists(core.read_namespaced_secret, "prenv-driver", NS),
            "config map": _exists(core.read_namespaced_config_map, "prenv-driver-config", NS),
            "cluster role": _exists(rbac.read_cluster_role, "prenv-driver"),
            "policy": _exists(admission.read_validating_admission_policy, "prenv-driver"),
        }

    def namespace_active() -> bool:
        return bool(core.read_namespace(NS).status.phase == "Active")

    with system_namespace_cleanup(core):
        try:
            assert stacks.up_shared()["namespace"] == NS
            stacks.up_driver()
            assert all(driver_objects().values()), driver_objects()

            stacks.destroy("driver")
            assert namespace_active() and shared_objects()
            assert not any(driver_objects().values()), driver_objects()

            stacks.up_driver()
            stacks.destroy("shared")
            assert namespace_active(), "the shared stack keeps prenv-system: the driver lives in it"
            assert not shared_objects()
            assert all(driver_objects().values()), driver_objects()

            # The shared stack comes back over the namespace it kept, and the driver is untouched.
            assert stacks.up_shared()["namespace"] == NS
            assert shared_objects() and all(driver_objects().values())
        finally:
            stacks.destroy("driver")
            stacks.destroy("shared")


def test_the_driver_stack_without_prenv_shared_stack_fails_naming_the_key_and_creates_nothing(
    cluster: ClusterInfo, cluster_api: client.ApiClient, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    stacks = SystemStacks(write_project(tmp_path / "project"), f"file://{tmp_path / 'state'}", system_env(cluster))
    try:
        with pytest.raises(auto.CommandError) as e:
            stacks.up_driver(without=("prenv:sharedStack",))
        assert "invalid configuration: prenv:sharedStack: is required" in str(e.value)
        resources = (stacks.stack("driver").export_stack().deployment or {}).get("resources") or []
        assert [r["type"] for r in resources if r["type"].startswith("kubernetes:")] == []
    finally:
        stacks.destroy("driver")
