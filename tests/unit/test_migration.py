"""The migration Job (``prenv:database.migrate``) under Pulumi mocks: its shape, its place between the database and the
app, once per sha; and its config errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prenv import stackconfig
from prenv.errors import ConfigError
from testsupport.pulumi_harness import Registry, run

SHA = "0123456789abcdef0123456789abcdef01234567"
MIGRATE = {"command": ["/app", "migrate"], "timeoutSeconds": 120}


def config(migrate: dict[str, Any] | None = MIGRATE, **template: Any) -> stackconfig.StackConfig:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/acme/shop"},
        "services": [{"name": "web", "public": True}],
        "database": {"migrate": migrate} if migrate else {},
    }
    base.update(template)
    return stackconfig.load({**base, "pr": 7, "sha": SHA, "branch": "feat/$(reboot)"})


def build(cfg: stackconfig.StackConfig) -> Registry:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs

    def go() -> None:
        PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://admin:s3cret@db:5432/postgres",
            ),
        )

    registry, _ = run(go)
    return registry


def test_the_migration_is_a_job_named_after_the_sha_reading_the_database_secret() -> None:
    registry = build(config())
    job = registry.one("kubernetes:batch/v1:Job").inputs
    assert job["metadata"]["name"] == "prenv-migrate-0123456789ab"
    assert job["metadata"]["namespace"] == "pr-7"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 120
    assert job["spec"]["template"]["metadata"]["annotations"] == {"prenv.dev/sha": SHA}
    assert job["spec"]["template"]["metadata"]["labels"]["prenv.dev/pr"] == "7"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/acme/shop:pr-7"  # the app's image by default
    assert container["command"] == ["/app", "migrate"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "prenv-database", "key": "DATABASE_URL"}
    assert env["PRENV_SHA"]["value"] == SHA
    assert "reboot" not in str(job)


def test_an_own_migration_image_is_used_as_given() -> None:
    registry = build(config({**MIGRATE, "image": "registry.example.com/acme/migrate:1.4"}))
    container = registry.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/acme/migrate:1.4"


def registered_dependencies(monkeypatch: pytest.MonkeyPatch, build: Callable[[], Any]) -> dict[str, list[str]]:
    """Resource name → the URNs it was registered as depending on (explicit and through its inputs; a dependency
    on a component is one on each of its children)."""
    from pulumi.runtime.mocks import MockMonitor

    deps: dict[str, list[str]] = {}
    register = MockMonitor.RegisterResource

    def recording(self: MockMonitor, request: Any) -> Any:
        deps[request.name] = list(request.dependencies)
        return register(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", recording)
    build()
    return deps


def test_the_job_runs_after_the_database_secret_and_before_the_app_rolls_out(monkeypatch: pytest.MonkeyPatch) -> None:
    deps = registered_dependencies(monkeypatch, lambda: build(config()))
    assert any(u.endswith("::env-database-secret") for u in deps["env-migration-job"])
    assert any(u.endswith("::env-migration-job") for u in deps["env-app-web"])


def test_a_helm_app_also_waits_for_the_migration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs
    from components.workload import Guard, Prepared

    cfg = config(app={"kind": "helm", "chart": "c"})
    prepared = Prepared("helm", Guard(namespace="pr-7", sha=SHA, key="prenv:app.chart"), chart=str(tmp_path))

    def go() -> None:
        PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://a:b@db:5432/postgres",
                workload=prepared,
            ),
        )

    deps = registered_dependencies(monkeypatch, lambda: run(go))
    assert any(u.endswith("::env-migration-job") for u in deps["env-workload-chart"])


def test_no_migration_no_job() -> None:
    assert not build(config(None)).of_type("kubernetes:batch/v1:Job")


@pytest.mark.parametrize(
    ("database", "key"),
    [
        ({"migrate": {"command": []}}, "prenv:database.migrate.command"),
        ({"migrate": {"command": ["x"], "image": "Not An Image"}}, "prenv:database.migrate.image"),
        ({"migrate": {"command": ["x"], "timeoutSeconds": 5}}, "prenv:database.migrate.timeoutSeconds"),
        ({"enabled": False, "migrate": {"command": ["x"]}}, "prenv:database"),
    ],
    ids=["no-command", "bad-image", "timeout-too-short", "no-database"],
)
def test_bad_migration_config_names_the_key(database: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(None, database=database)
    assert e.value.key == key
