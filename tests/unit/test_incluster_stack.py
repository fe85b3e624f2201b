"""The in-cluster install under Pulumi mocks: least-privilege RBAC bounded by an admission policy, the namespace taken
from the shared stack, credentials only from Secrets, graceful termination.

What the rules and the policy allow and deny against a real API server: tests/integration/test_driver_rbac.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi.runtime
import pytest
import yaml

from prenv.errors import ConfigError
from testsupport.pulumi_harness import Registry, run

SHARED = "organization/prenv/shared"
SHARED_NAMESPACE = "ops-system"  # not naming.SYSTEM_NAMESPACE: proves the name comes from the shared stack
CONFIG = {
    "prenv:driverImage": "registry.example.com/prenv:0.1.0",
    "prenv:webhookSecret": "whsec",
    "prenv:driverConfig": '{"source": {"type": "github", "github": {"repository": "acme/shop"}}, '
    '"state": {"backend": "s3://acme-prenv-state?region=eu-west-1"}}',
    "prenv:sharedStack": SHARED,
}


class SharedStackRegistry(Registry):
    """Mocks answering the StackReference with the shared stack's outputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.inputs["name"], "outputs": {"namespace": SHARED_NAMESPACE}}
        return super().new_resource(args)


@pytest.fixture(autouse=True)
def _clean_config() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({})


def build(**overrides: str | None) -> Registry:
    config = {k: v for k, v in {**CONFIG, **overrides}.items() if v is not None}
    pulumi.runtime.set_all_config(config, secret_keys=["prenv:webhookSecret"])
    from stacks import incluster

    registry, _ = run(incluster.run, SharedStackRegistry())
    return registry


def _cluster_roles(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    roles = registry.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    return {r.inputs["metadata"]["name"]: r.inputs["rules"] for r in roles}


def test_cluster_wide_the_driver_holds_only_namespaces_rolebindings_and_binding_its_environment_role() -> None:
    registry = build()
    binding = registry.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prenv-driver", "namespace": SHARED_NAMESPACE}]
    cluster_wide = _cluster_roles(registry)[binding["roleRef"]["name"]]
    granted = {(rule["apiGroups"][0], res): rule for rule in cluster_wide for res in rule["resources"]}
    assert set(granted) == {("", "namespaces"), ("rbac.authorization.k8s.io", "rolebindings"),
                            ("rbac.authorization.k8s.io", "clusterroles")}  # fmt: skip
    assert granted[("rbac.authorization.k8s.io", "clusterroles")]["verbs"] == ["bind"]
    assert granted[("rbac.authorization.k8s.io", "clusterroles")]["resourceNames"] == ["prenv-environment"]
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in cluster_wide)


def test_what_an_environment_is_made_of_is_a_cluster_role_bound_nowhere_cluster_wide() -> None:
    registry = build()
    environment = _cluster_roles(registry)["prenv-environment"]
    resources = {r for rule in environment for r in rule["resources"]}
    assert {"deployments", "services", "secrets", "ingresses", "networkpolicies", "jobs"} <= resources
    assert not {"namespaces", "rolebindings", "roles", "clusterroles", "nodes", "persistentvolumes"} & resources
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in environment)
    reads = {r for rule in environment if rule["verbs"] == ["get", "list", "watch"] for r in rule["resources"]}
    assert {"pods", "replicasets", "events"} <= reads
    bound = [
        b.inputs["roleRef"]["name"]
        for b in registry.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    ]
    assert "prenv-environment" not in bound
    lease = registry.one("kubernetes:rbac.authorization.k8s.io/v1:Role").inputs
    assert lease["metadata"]["namespace"] == SHARED_NAMESPACE
    assert [rule["resources"] for rule in lease["rules"]] == [["leases"]]


def test_an_admission_policy_bounds_every_write_of_the_driver_to_prenv_namespaces() -> None:
    registry = build(**{"prenv:namespacePrefix": "shop-"})
    policy = registry.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy").inputs
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConditions"][0]["expression"] == (
        f"request.userInfo.username == 'system:serviceaccount:{SHARED_NAMESPACE}:prenv-driver'"
    )
    rules = spec["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]}]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "matches('^shop-(pr-[1-9][0-9]{0,8}|br-([a-z0-9]+-)*[0-9]{8})$')" in expressions
    assert "labels['prenv.dev/managed-by'] == 'prenv'" in expressions
    assert "oldObject" in expressions and "namespaceObject" in expressions
    binding = registry.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding").inputs
    assert binding["spec"] == {"policyName": "prenv-driver", "validationActions": ["Deny"]}


def test_the_prefix_defaults_to_the_templates_namespace_prefix() -> None:
    registry = build()  # the checkout's Pulumi.preview.yaml: namespacePrefix ""
    spec = registry.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy").inputs["spec"]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "matches('^(pr-[1-9][0-9]{0,8}|br-([a-z0-9]+-)*[0-9]{8})$')" in expressions


def test_the_driver_lives_in_the_shared_stacks_namespace_and_declares_no_namespace_of_its_own() -> None:
    registry = build()
    assert not registry.of_type("kubernetes:core/v1:Namespace")
    namespaced = [
        r for r in registry.resources if r.typ.startswith("kubernetes:") and "namespace" in r.inputs["metadata"]
    ]
    assert {r.typ.rsplit(":", 1)[-1] for r in namespaced} >= {"ServiceAccount", "Deployment", "Secret", "Service"}
    assert {r.inputs["metadata"]["namespace"] for r in namespaced} == {SHARED_NAMESPACE}


def test_without_prenv_shared_stack_the_driver_stack_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="prenv:sharedStack"):
        build(**{"prenv:sharedStack": None})


def test_the_driver_reads_credentials_from_a_secret_and_gets_time_to_finish_operations() -> None:
    registry = build()
    spec = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 600
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "prenv-driver"}}]
    plain = {  # nothing secret
        "PRENV_LEADER_ELECTION",
        "PRENV_STATE_DIR",
        "HOME",
        "KUBERNETES_SERVICE_HOST",
        "PRENV_SERVE__LEADER_ELECTION__ADVERTISE_URL",
    }
    assert all("value" not in e or e["name"] in plain for e in container["env"])
    assert container["securityContext"]["runAsNonRoot"] is True


def test_each_replica_advertises_its_pod_ip_for_followers_to_relay_webhooks_to() -> None:
    container = build().one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["PRENV_SERVE__LEADER_ELECTION__ADVERTISE_URL"]["value"] == "http://$(POD_IP):8080"
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_IP") < names.index("PRENV_SERVE__LEADER_ELECTION__ADVERTISE_URL"), "$(POD_IP) expands"


def test_the_driver_gets_its_prenv_yaml_from_a_config_map() -> None:
    registry = build()
    data = yaml.safe_load(registry.one("kubernetes:core/v1:ConfigMap").inputs["data"]["prenv.yaml"])
    assert data["source"]["github"]["repository"] == "acme/shop"
    assert data["project_dir"] == "/opt/prenv/project"  # the image's project, writable by the driver's user
    pod = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/prenv", "readOnly": True}


def test_the_driver_runs_non_root_with_its_state_on_an_empty_dir_and_reaches_the_api_by_its_service_name() -> None:
    pod = build().one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "state", "emptyDir": {}} in pod["volumes"]
    assert {"name": "state", "mountPath": "/var/lib/prenv"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PRENV_STATE_DIR"] == env["HOME"] == "/var/lib/prenv"
    assert env["KUBERNETES_SERVICE_HOST"] == "kubernetes.default.svc"


@pytest.mark.parametrize("backend", [None, "file:///var/lib/prenv/state"])
def test_a_state_backend_that_lives_in_one_pod_is_refused_naming_the_key(backend: str | None) -> None:
    state = {} if backend is None else {"state": {"backend": backend}}
    config = json.dumps({"source": {"type": "github", "github": {"repository": "acme/shop"}}, **state})
    with pytest.raises(Exception, match=r"prenv:driverConfig\.state\.backend"):
        build(**{"prenv:driverConfig": config})


def test_a_github_app_key_is_mounted_from_its_own_secret_and_named_in_the_config() -> None:
    pulumi.runtime.set_all_config({}, secret_keys=[])
    registry = build(**{"prenv:githubAppPrivateKey": "-----BEGIN RSA PRIVATE KEY-----\nx\n"})
    data = yaml.safe_load(registry.one("kubernetes:core/v1:ConfigMap").inputs["data"]["prenv.yaml"])
    assert data["source"]["github"]["app"]["private_key_file"] == "/etc/prenv-secrets/github-app.pem"
    secrets = {r.inputs["metadata"]["name"]: r for r in registry.of_type("kubernetes:core/v1:Secret")}
    data = secrets["prenv-driver-github-app"].inputs["stringData"]
    assert "4dabf18193072939515e22adb298388d" in data  # pulumi's secret marker: the key stays encrypted in state
    assert list(data["value"]) == ["github-app.pem"]
    pod = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert {"name": "github-app", "mountPath": "/etc/prenv-secrets", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]


def test_without_a_driver_host_there_is_no_ingress_and_the_service_skips_the_endpoint_settle() -> None:
    registry = build()
    assert registry.of_type("kubernetes:networking.k8s.io/v1:Ingress") == []
    service = registry.one("kubernetes:core/v1:Service").inputs
    assert service["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_a_driver_host_gets_an_https_ingress_to_the_webhook_service_with_the_shared_wildcard_certificate() -> None:
    registry = build(**{"prenv:driverHost": "prenv.preview.example.com"})
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["metadata"]["namespace"] == SHARED_NAMESPACE
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["prenv.preview.example.com"], "secretName": "wildcard-tls"}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "prenv.preview.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "prenv-driver", "port": {"name": "http"}}


def test_a_driver_host_that_is_not_a_dns_name_is_refused_naming_the_key() -> None:
    with pytest.raises(Exception, match="prenv:driverHost"):
        build(**{"prenv:driverHost": "not a host"})


def test_s3_keys_and_a_gitlab_token_come_from_secret_config_into_the_drivers_secret() -> None:
    registry = build(
        **{"prenv:awsAccessKeyId": "AKIA", "prenv:awsSecretAccessKey": "s3cr3t", "prenv:gitlabToken": "glpat"}
    )
    secrets = {r.inputs["metadata"]["name"]: r.inputs for r in registry.of_type("kubernetes:core/v1:Secret")}
    data = secrets["prenv-driver"]["stringData"]
    assert "4dabf18193072939515e22adb298388d" in data  # a secret: encrypted in the stack's state
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GITLAB_TOKEN"} <= set(data["value"])
