"""The in-cluster install: least-privilege RBAC, credentials only from Secrets, graceful termination."""

from __future__ import annotations

import pulumi.runtime

from testsupport.pulumi_harness import run


def build_driver() -> object:
    pulumi.runtime.set_all_config(
        {
            "prenv:driverImage": "registry.example.com/prenv:0.1.0",
            "prenv:webhookSecret": "whsec",
            "prenv:driverConfig": '{"source": {"type": "github", "github": {"repository": "acme/shop"}}}',
        },
        secret_keys=["prenv:webhookSecret"],
    )
    from stacks import incluster

    incluster.run()
    return None


def test_rbac_grants_only_what_preview_environments_are_made_of() -> None:
    registry, _ = run(build_driver)  # type: ignore[arg-type]
    rules = registry.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole").inputs["rules"]
    resources = {r for rule in rules for r in rule["resources"]}
    assert "*" not in resources
    assert {"namespaces", "deployments", "ingresses", "networkpolicies", "secrets"} <= resources
    assert not any("*" in rule["verbs"] for rule in rules)
    assert not {"clusterroles", "nodes", "persistentvolumes"} & resources
    lease = registry.one("kubernetes:rbac.authorization.k8s.io/v1:Role").inputs["rules"][0]
    assert lease["resources"] == ["leases"]


def test_the_driver_reads_credentials_from_a_secret_and_gets_time_to_finish_operations() -> None:
    registry, _ = run(build_driver)  # type: ignore[arg-type]
    spec = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 600
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "prenv-driver"}}]
    assert all("value" not in e or e["name"] == "PRENV_LEADER_ELECTION" for e in container["env"])
    assert container["securityContext"]["runAsNonRoot"] is True


def test_the_driver_gets_its_prenv_yaml_from_a_config_map() -> None:
    registry, _ = run(build_driver)  # type: ignore[arg-type]
    data = registry.one("kubernetes:core/v1:ConfigMap").inputs["data"]["prenv.yaml"]
    assert "repository: acme/shop" in data
    pod = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "config", "mountPath": "/etc/prenv", "readOnly": True}]
