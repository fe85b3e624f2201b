"""Component shapes under Pulumi mocks: names, labels, quota and limit numbers, host, TLS wiring, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from prenv import stackconfig
from testsupport.pulumi_harness import Registry, run

SHA = "0123456789abcdef0123456789abcdef01234567"


def config(**template: Any) -> stackconfig.StackConfig:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/acme/shop"},
        "services": [
            {"name": "web", "port": 8080, "public": True, "readiness": {"path": "/healthz"}},
            {"name": "worker", "port": 9090},
        ],
    }
    base.update(template)
    return stackconfig.load({**base, "pr": 7, "sha": SHA, "author": "mallory; rm -rf /", "branch": "x"})


def build_environment(cfg: stackconfig.StackConfig, **extra: Any) -> tuple[Registry, dict[str, Any]]:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs

    def build() -> dict[str, Any]:
        env = PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://admin:s3cret@db:5432/postgres",
                **extra,
            ),
        )
        return {"url": env.url, "namespace": env.namespace, "database": env.database, "sha": env.sha}

    return run(build)


def by_kind(registry: Registry, kind: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in registry.of_type(f"kubernetes:{kind}")}


def test_namespace_is_named_after_the_pr_and_carries_sanitised_labels() -> None:
    registry, _ = build_environment(config(namespacePrefix="preview-"))
    ns = registry.one("kubernetes:core/v1:Namespace").inputs["metadata"]
    assert ns["name"] == "preview-pr-7"
    assert ns["labels"]["prenv.dev/pr"] == "7"
    assert ns["labels"]["prenv.dev/managed-by"] == "prenv"
    assert ns["labels"]["prenv.dev/author"] == "mallory-rm--rf"
    assert ns["labels"]["prenv.dev/ttl"] == "48h"
    assert ns["labels"]["prenv.dev/created-at"] == "2026-11-22T04-00-00Z"


def test_quota_and_limit_range_default_to_two_cpus_2gi_20_pods_and_500m_512mi() -> None:
    registry, _ = build_environment(config())
    quota = registry.one("kubernetes:core/v1:ResourceQuota").inputs
    assert quota["metadata"]["namespace"] == "pr-7"
    assert quota["spec"]["hard"] == {
        "requests.cpu": "2",
        "limits.cpu": "2",
        "requests.memory": "2Gi",
        "limits.memory": "2Gi",
        "pods": "20",
    }
    limit = registry.one("kubernetes:core/v1:LimitRange").inputs["spec"]["limits"][0]
    assert limit["type"] == "Container"
    assert limit["default"] == {"cpu": "500m", "memory": "512Mi"}
    assert limit["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}


def test_quota_numbers_come_from_config() -> None:
    registry, _ = build_environment(config(quota={"cpu": "4", "memory": "8Gi", "pods": 50}))
    assert registry.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]["pods"] == "50"
    assert registry.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]["limits.memory"] == "8Gi"


def test_network_policy_admits_only_the_namespace_itself_and_the_ingress_controller() -> None:
    registry, _ = build_environment(config())
    spec = registry.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress"]
    peers = spec["ingress"][0]["from"]
    assert {"podSelector": {}} in peers
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers


def test_every_service_gets_a_deployment_with_the_pr_image_and_the_sha_annotation() -> None:
    registry, _ = build_environment(config())
    deployments = by_kind(registry, "apps/v1:Deployment")
    assert set(deployments) == {"web", "worker"}
    web = deployments["web"]["spec"]
    assert web["replicas"] == 1
    assert web["template"]["metadata"]["annotations"] == {"prenv.dev/sha": SHA}
    container = web["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/acme/shop:pr-7"
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["PUBLIC_URL"]["value"] == "http://web-7.preview.example.com"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "prenv-database", "key": "DATABASE_URL"}
    assert "value" not in env["DATABASE_URL"]


def test_every_container_is_told_its_pr_sha_and_port_and_reports_its_last_log_lines_when_it_fails() -> None:
    registry, _ = build_environment(config())
    for name, port in (("web", "8080"), ("worker", "9090")):
        container = by_kind(registry, "apps/v1:Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["PRENV_PR"], env["PRENV_SHA"], env["PORT"]) == ("7", SHA, port)
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_a_port_the_template_sets_itself_is_kept() -> None:
    services = [{"name": "web", "port": 8080, "public": True, "env": {"PORT": "3000"}}]
    registry, _ = build_environment(config(services=services))
    container = by_kind(registry, "apps/v1:Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]
    assert [e["value"] for e in container["env"] if e["name"] == "PORT"] == ["3000"]


@pytest.mark.parametrize("name", ["PRENV_PR", "PRENV_SHA", "DATABASE_URL", "PUBLIC_URL"])
def test_a_template_cannot_set_what_prenv_sets(name: str) -> None:
    from prenv.errors import ConfigError

    with pytest.raises(ConfigError, match=name) as e:
        config(services=[{"name": "web", "public": True, "env": {name: "x"}}])
    assert str(e.value).startswith("prenv:services[0].env")


@pytest.mark.parametrize("value", ["3m", "90s", "30s", "30m"])
def test_the_rollout_timeout_takes_seconds_or_minutes_from_30s_to_30m(value: str) -> None:
    assert config(rolloutTimeout=value).template.rollout_timeout == value


@pytest.mark.parametrize("value", ["10s", "31m", "2h", "5", "soon"])
def test_a_rollout_timeout_out_of_range_is_rejected_naming_the_key(value: str) -> None:
    from prenv.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        config(rolloutTimeout=value)
    assert str(e.value).startswith("prenv:rolloutTimeout") and value in str(e.value)


def test_an_explicit_image_tag_replaces_the_pr_tag() -> None:
    cfg = stackconfig.load(
        {
            "baseDomain": "preview.example.com",
            "image": {"repository": "registry.example.com/acme/shop"},
            "services": [{"name": "web", "public": True}],
            "pr": 7,
            "sha": SHA,
            "imageTag": "sha-0123456",
        }
    )
    registry, _ = build_environment(cfg)
    container = by_kind(registry, "apps/v1:Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/acme/shop:sha-0123456"


def test_each_service_is_exposed_by_a_service_on_port_80() -> None:
    registry, _ = build_environment(config())
    services = by_kind(registry, "core/v1:Service")
    assert services["web"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080}]
    assert services["worker"]["spec"]["selector"]["app.kubernetes.io/name"] == "worker"


def test_ingress_routes_the_pr_host_to_the_public_service_without_tls_by_default() -> None:
    registry, outs = build_environment(config())
    spec = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["rules"][0]["host"] == "web-7.preview.example.com"
    assert spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"
    assert "tls" not in spec
    assert outs["url"].value == "http://web-7.preview.example.com"


def test_an_up_awaits_deployments_and_the_admitted_ingress_not_the_endpoint_settle_sleep() -> None:
    registry, _ = build_environment(config())
    for service in by_kind(registry, "core/v1:Service").values():
        assert service["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    for deployment in by_kind(registry, "apps/v1:Deployment").values():
        assert "pulumi.com/skipAwait" not in deployment["metadata"]["annotations"]
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.loadBalancer.ingress}"


def test_template_ingress_annotations_may_override_the_ingress_await() -> None:
    cfg = config(ingress={"annotations": {"pulumi.com/waitFor": "jsonpath={.metadata.name}"}})
    registry, _ = build_environment(cfg)
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.metadata.name}"


def test_wildcard_tls_copies_the_shared_certificate_into_the_namespace_as_a_secret() -> None:
    cfg = config(tls={"mode": "wildcard"}, sharedStack="acme/prenv/shared")
    registry, outs = build_environment(cfg, wildcard_cert="CERT", wildcard_key="KEY")
    secret = by_kind(registry, "core/v1:Secret")["prenv-wildcard-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["namespace"] == "pr-7"
    spec = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs["spec"]
    assert spec["tls"] == [{"hosts": ["web-7.preview.example.com"], "secretName": "prenv-wildcard-tls"}]
    assert outs["url"].value == "https://web-7.preview.example.com"


def test_cert_manager_tls_annotates_the_ingress_with_the_issuer() -> None:
    registry, _ = build_environment(config(tls={"mode": "cert-manager", "issuer": "letsencrypt"}))
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": ["web-7.preview.example.com"], "secretName": "web-tls"}]


def test_controller_default_tls_names_no_secret() -> None:
    registry, _ = build_environment(config(tls={"mode": "controller-default"}))
    assert registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs["spec"]["tls"] == [
        {"hosts": ["web-7.preview.example.com"]}
    ]


def test_the_database_branch_is_named_after_the_pr_and_its_url_is_secret() -> None:
    registry, outs = build_environment(config())
    branch = registry.one("pulumi-python:dynamic:Resource").inputs
    assert branch["name"] == "pr_7"
    assert branch.get("template") is None
    assert "__provider" in branch
    assert outs["database"].value == "pr_7"
    secret = by_kind(registry, "core/v1:Secret")["prenv-database"]
    assert secret["metadata"]["namespace"] == "pr-7"


def test_the_database_password_is_a_random_password_given_to_the_branch() -> None:
    registry, _ = build_environment(config())
    password = registry.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32
    assert password.inputs["special"] is False
    assert registry.one("pulumi-python:dynamic:Resource").inputs["password"] == f"random-pw-{password.name}"


def test_database_url_output_is_a_secret() -> None:
    from components.database import PreviewDatabase, PreviewDatabaseArgs

    def build() -> dict[str, Any]:
        db = PreviewDatabase("db", PreviewDatabaseArgs(admin_dsn="postgresql://a:b@h/p", database="pr_7"))
        return {"url": db.url}

    _, outs = run(build)
    assert outs["url"].secret is True
    assert outs["url"].value == "postgresql://pr_7:pw-123@db.test:5432/pr_7"


def test_every_object_claims_ownership_so_recovery_can_take_over_its_fields() -> None:
    registry, _ = build_environment(config())
    k8s_objects = [r for r in registry.resources if r.typ.startswith("kubernetes:")]
    assert k8s_objects
    assert all(r.inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true" for r in k8s_objects)


def test_components_use_prenv_type_tokens_and_the_environment_outputs_the_sha() -> None:
    registry, outs = build_environment(config())
    types = {r.typ for r in registry.resources if r.typ.startswith("prenv:")}
    assert types == {
        "prenv:environment:PreviewEnvironment",
        "prenv:namespace:PreviewNamespace",
        "prenv:database:PreviewDatabase",
        "prenv:app:PreviewApp",
        "prenv:ingress:PreviewIngress",
    }
    assert outs["sha"].value == SHA
    assert outs["namespace"].value == "pr-7"


def test_app_secrets_become_one_secret_referenced_by_every_container() -> None:
    registry, _ = build_environment(config(), app_secrets={"STRIPE_KEY": "sk_test"})
    assert "prenv-app-secrets" in by_kind(registry, "core/v1:Secret")
    container = by_kind(registry, "apps/v1:Deployment")["worker"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "prenv-app-secrets"}}]


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ({"tls": {"mode": "wildcard"}}, "prenv:"),
        ({"tls": {"mode": "cert-manager"}}, "prenv:tls"),
        ({"services": [{"name": "web"}]}, "prenv:services"),
    ],
    ids=["wildcard-needs-shared-stack", "cert-manager-needs-issuer", "one-public-service"],
)
def test_inconsistent_templates_are_rejected_naming_the_key(template: dict[str, Any], key: str) -> None:
    from prenv.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        config(**template)
    assert str(e.value).startswith(key)
