"""Private images (``prenv:image.pullSecret``): the shared stack holds the registry credentials, each PR namespace
gets a copy as a docker-registry Secret, the built-in shape's pods pull with it and charts get ``{pullSecret}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi.runtime
import pytest

from prenv import stackconfig
from prenv.errors import ConfigError
from tests.fixtures.preview import write_project
from testsupport.pulumi_harness import run

SHA = "0123456789abcdef0123456789abcdef01234567"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
DOCKER_CONFIG = json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpodW50ZXIy"}}})
SHARED = "organization/prenv/shared"


def config(**template: Any) -> stackconfig.StackConfig:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/acme/shop", "pullSecret": "regcred"},
        "services": [{"name": "web", "public": True}],
        "sharedStack": SHARED,
    }
    base.update(template)
    return stackconfig.load({**base, "pr": 7, "sha": SHA})


def build(cfg: stackconfig.StackConfig, **extra: Any) -> Any:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs

    def go() -> None:
        PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://admin:s3cret@db:5432/postgres",
                pull_secret_config=DOCKER_CONFIG,
                **extra,
            ),
        )

    registry, _ = run(go)
    return registry


def secrets_by_name(registry: Any) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in registry.of_type("kubernetes:core/v1:Secret")}


def test_each_pr_namespace_gets_the_registry_credentials_as_a_secret_docker_registry_secret() -> None:
    registry = build(config())
    secret = secrets_by_name(registry)["regcred"]
    assert secret["metadata"]["namespace"] == "pr-7"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    data = secret["stringData"]
    assert data.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270", "the credentials are a Pulumi secret"
    assert data["value"] == {".dockerconfigjson": DOCKER_CONFIG}


def test_the_built_in_shapes_pods_pull_with_it() -> None:
    registry = build(config())
    pod = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_without_a_pull_secret_pods_name_none() -> None:
    registry = build(config(image={"repository": "registry.example.com/acme/shop"}))
    pod = registry.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in pod
    assert "regcred" not in secrets_by_name(registry)


def test_charts_get_the_secret_name_as_a_placeholder_only_when_it_is_configured() -> None:
    from components.workload import placeholder_values

    app = {"kind": "helm", "chart": "c"}
    assert placeholder_values(config(app=app), None)["pullSecret"] == "regcred"
    plain = config(app=app, image={"repository": "registry.example.com/acme/shop"})
    assert "pullSecret" not in placeholder_values(plain, None)


def test_a_pull_secret_needs_the_shared_stack() -> None:
    with pytest.raises(ConfigError) as e:
        config(sharedStack=None)
    assert "sharedStack is required with image.pullSecret" in str(e.value)


def test_a_pull_secret_name_is_a_dns_name() -> None:
    with pytest.raises(ConfigError) as e:
        config(image={"repository": "registry.example.com/acme/shop", "pullSecret": "Reg_Cred"})
    assert e.value.key == "prenv:image.pullSecret"


# --- the shared stack ---------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    image = {"repository": "registry.example.com/acme/shop", "pullSecret": "regcred"}
    return write_project(tmp_path / "project", image=image, sharedStack=SHARED)


@pytest.fixture
def stack_config() -> Iterator[dict[str, str]]:
    values: dict[str, str] = {}
    yield values
    pulumi.runtime.set_all_config({})


def run_shared(project: Path, values: dict[str, str]) -> Any:
    from stacks import shared

    pulumi.runtime.set_all_config({f"prenv:{k}": v for k, v in values.items()})
    registry, _ = run(lambda: shared.run(project))
    return registry


def test_the_shared_stack_holds_the_registry_credentials_from_a_file(
    project: Path, tmp_path: Path, stack_config: dict[str, str]
) -> None:
    (tmp_path / "config.json").write_text(DOCKER_CONFIG)
    stack_config.update(registryAuthFile=str(tmp_path / "config.json"))
    registry = run_shared(project, stack_config)
    secret = registry.one("kubernetes:core/v1:Secret").inputs
    assert secret["metadata"]["name"] == "registry-auth"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["stringData"][SECRET_SIG] == "1b47061264138c4ac30d75fd1eb44270"
    assert secret["stringData"]["value"] == {".dockerconfigjson": DOCKER_CONFIG}


@pytest.mark.parametrize(
    ("content", "key"),
    [(None, "prenv:registryAuth"), ('{"user": "hunter2"}', "prenv:registryAuthFile")],
    ids=["missing", "not-a-docker-config"],
)
def test_bad_registry_credentials_name_the_key_and_never_echo_the_value(
    project: Path, tmp_path: Path, stack_config: dict[str, str], content: str | None, key: str
) -> None:
    if content is not None:
        (tmp_path / "config.json").write_text(content)
        stack_config.update(registryAuthFile=str(tmp_path / "config.json"))
    with pytest.raises(ConfigError) as e:
        run_shared(project, stack_config)
    assert e.value.key == key
    assert "hunter2" not in str(e.value)
