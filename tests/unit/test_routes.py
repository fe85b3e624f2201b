"""Several routes (``prenv:routes``): hosts and paths to Services, TLS for every host, the URL is the first route."""

from __future__ import annotations

from typing import Any

import pytest

from prenv import stackconfig
from prenv.errors import ConfigError
from testsupport.pulumi_harness import Registry, run

SHA = "0123456789abcdef0123456789abcdef01234567"
SERVICES = [{"name": "web", "port": 8080}, {"name": "api", "port": 9090}]
ROUTES = [
    {"service": "web"},
    {"service": "api", "host": "web", "path": "/api", "port": "http"},
    {"service": "api", "host": "admin"},
]


def config(**template: Any) -> stackconfig.StackConfig:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/acme/shop"},
        "services": SERVICES,
        "routes": ROUTES,
    }
    base.update(template)
    return stackconfig.load({**base, "pr": 7, "sha": SHA})


def build(cfg: stackconfig.StackConfig) -> tuple[Registry, dict[str, Any]]:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs

    def go() -> dict[str, Any]:
        env = PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://admin:s3cret@db:5432/postgres",
                wildcard_cert="-----BEGIN CERTIFICATE-----",
                wildcard_key="-----BEGIN PRIVATE KEY-----",
            ),
        )
        return {"url": env.url}

    registry, outs = run(go)
    return registry, {k: v.value for k, v in outs.items()}


def test_routes_become_one_ingress_with_a_rule_per_host_and_a_path_per_route() -> None:
    registry, outs = build(config())
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    rules = {r["host"]: r["http"]["paths"] for r in ingress["spec"]["rules"]}
    assert list(rules) == ["web-7.preview.example.com", "admin-7.preview.example.com"]
    web = [(p["path"], p["backend"]["service"]["name"]) for p in rules["web-7.preview.example.com"]]
    assert web == [("/", "web"), ("/api", "api")]
    assert rules["admin-7.preview.example.com"][0]["backend"]["service"] == {"name": "api", "port": {"name": "http"}}
    assert outs["url"] == "http://web-7.preview.example.com"


def test_every_routed_host_gets_tls() -> None:
    cfg = config(tls={"mode": "wildcard"}, sharedStack="organization/prenv/shared")
    registry, outs = build(cfg)
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["spec"]["tls"] == [
        {"hosts": ["web-7.preview.example.com", "admin-7.preview.example.com"], "secretName": "prenv-wildcard-tls"}
    ]
    assert outs["url"] == "https://web-7.preview.example.com"


def test_without_routes_the_one_public_service_is_the_route() -> None:
    cfg = config(routes=[], services=[{"name": "web", "public": True}, {"name": "api"}])
    assert [(r.host, r.service, r.port, r.path) for r in cfg.routes] == [
        ("web-7.preview.example.com", "web", "http", "/")
    ]


def test_the_first_route_is_the_url_and_fills_the_host_placeholder() -> None:
    cfg = config(routes=[{"service": "api", "host": "shop"}, {"service": "web"}])
    assert cfg.url == "http://shop-7.preview.example.com"
    helm = config(app={"kind": "helm", "chart": "c"}, routes=[{"service": "frontend", "port": 3000}])
    assert helm.host == "frontend-7.preview.example.com"
    assert helm.routes[0].port == 3000


@pytest.mark.parametrize(
    ("template", "key", "message"),
    [
        ({"routes": [{"service": "web"}, {"service": "worker"}]}, "prenv:routes[1].service", "not one of"),
        ({"services": [{"name": "web", "public": True}]}, "prenv:services", "drop services[].public"),
        ({"routes": [{"service": "web"}, {"service": "api", "host": "web"}]}, "prenv:routes[1]", "routed twice"),
        ({"routes": [{"service": "web", "path": "api"}]}, "prenv:routes[0].path", "expected form"),
        (
            {"app": {"kind": "helm", "chart": "c", "service": "web"}, "routes": [{"service": "web"}]},
            "prenv:app.service",
            "list this service there",
        ),
    ],
    ids=["unknown-service", "public-and-routes", "same-host-and-path", "relative-path", "app-service-and-routes"],
)
def test_bad_routes_are_config_errors_naming_the_key(template: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(**template)
    assert e.value.key == key
    assert message in str(e.value)
