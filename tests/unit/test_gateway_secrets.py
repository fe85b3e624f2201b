"""The secrets rule: the public development passphrase only for file backends; a shared backend needs its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from prenv import driver, settings
from prenv.cli import app
from prenv.errors import ConfigError
from prenv.gateway.secrets import secrets_env
from prenv.toolchain.env import DEV_PASSPHRASE

S3 = "s3://bucket?region=us-east-1"
DEV = "dev-passphrase"


@pytest.mark.parametrize(
    ("backend", "env", "provider", "added"),
    [
        ("file:///tmp/state", {}, None, {"PULUMI_CONFIG_PASSPHRASE": DEV}),
        ("file://.state/pulumi", {}, None, {"PULUMI_CONFIG_PASSPHRASE": DEV}),
        ("file:///tmp/state", {"PULUMI_CONFIG_PASSPHRASE": "mine"}, None, {}),
        ("file:///tmp/state", {"PULUMI_CONFIG_PASSPHRASE": DEV}, None, {}),
        (S3, {"PULUMI_CONFIG_PASSPHRASE": "mine"}, None, {}),
        (S3, {"PULUMI_CONFIG_PASSPHRASE": ""}, None, {}),
        (S3, {"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/pp"}, None, {}),
        (S3, {}, "awskms://alias/prenv?region=us-east-1", {}),
        (S3, {"PULUMI_CONFIG_PASSPHRASE": DEV}, "awskms://alias/prenv", {}),
        ("gs://bucket", {}, "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", {}),
        ("https://api.pulumi.com", {}, None, {}),
    ],
    ids=[
        "file backend without passphrase gets the development one",
        "relative file backend gets the development one",
        "file backend keeps its own passphrase",
        "file backend may use the development passphrase explicitly",
        "s3 with a passphrase",
        "s3 with a deliberately empty passphrase",
        "s3 with a passphrase file",
        "s3 with a KMS",
        "s3 with a KMS ignores a development passphrase",
        "gs with a KMS",
        "Pulumi Cloud uses its own secrets manager",
    ],
)
def test_a_backend_with_secrets_is_accepted(
    backend: str, env: dict[str, str], provider: str | None, added: dict[str, str]
) -> None:
    assert secrets_env(backend, env, secrets_provider=provider, dev_passphrase=DEV) == added


@pytest.mark.parametrize(
    ("backend", "env", "provider", "key"),
    [
        (S3, {}, None, "PULUMI_CONFIG_PASSPHRASE"),
        ("gs://bucket", {}, None, "PULUMI_CONFIG_PASSPHRASE"),
        ("azblob://container", {}, None, "PULUMI_CONFIG_PASSPHRASE"),
        (S3, {"PULUMI_CONFIG_PASSPHRASE": DEV}, None, "PULUMI_CONFIG_PASSPHRASE"),
        (S3, {}, "passphrase", "state.secrets_provider"),
        ("file:///tmp/state", {}, "default", "state.secrets_provider"),
    ],
    ids=[
        "s3 without passphrase or KMS",
        "gs without passphrase or KMS",
        "azblob without passphrase or KMS",
        "s3 with the public development passphrase",
        "a secrets provider that is no KMS",
        "a secrets provider that is no KMS, even on a file backend",
    ],
)
def test_a_backend_without_its_own_secrets_is_refused_naming_what_to_set(
    backend: str, env: dict[str, str], provider: str | None, key: str
) -> None:
    with pytest.raises(ConfigError) as e:
        secrets_env(backend, env, secrets_provider=provider, dev_passphrase=DEV)
    assert e.value.key == key
    if key == "PULUMI_CONFIG_PASSPHRASE":
        for what in ("PULUMI_CONFIG_PASSPHRASE_FILE", "state.secrets_provider", "awskms://"):
            assert what in str(e.value)


def test_the_development_passphrase_comes_with_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="prenv.gateway.secrets"):
        secrets_env("file:///tmp/state", {}, secrets_provider=None, dev_passphrase=DEV)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "development passphrase" in lines[0]
    assert DEV not in lines[0]


def _settings(tmp_path: Path, backend: str, **environ: str) -> settings.Settings:
    config = tmp_path / "prenv.yaml"
    config.write_text(f"state:\n  backend: '{backend}'\n")
    return settings.load(config, environ=environ)


def test_the_driver_gives_pulumi_the_development_passphrase_only_on_a_file_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    env = driver.pulumi_environment(_settings(tmp_path, f"file://{tmp_path}/state"))
    assert env["PULUMI_CONFIG_PASSPHRASE"] == DEV_PASSPHRASE
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE"):
        driver.pulumi_environment(_settings(tmp_path, S3))


def test_the_driver_refuses_the_development_passphrase_a_developer_shell_exported_for_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", DEV_PASSPHRASE)  # what `eval "$(make -s tools-env)"` exports
    with pytest.raises(ConfigError, match="public development passphrase"):
        driver.pulumi_environment(_settings(tmp_path, S3))


def test_the_driver_passes_a_kms_to_the_workspace_that_creates_stacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    s = _settings(tmp_path, f"file://{tmp_path}/state", PRENV_STATE__SECRETS_PROVIDER="awskms://alias/prenv")
    assert s.state.secrets_provider == "awskms://alias/prenv"
    gw = driver.build_gateway(s)
    assert gw._workspace().secrets_provider == "awskms://alias/prenv"
    assert "PULUMI_CONFIG_PASSPHRASE" not in gw.env


@pytest.mark.parametrize(
    "command", [["sync"], ["up", "--pr", "7", "--sha", "a" * 40], ["destroy", "--pr", "7"], ["serve"]]
)
def test_every_driver_command_refuses_an_s3_backend_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    config = tmp_path / "prenv.yaml"
    config.write_text(f"state:\n  backend: '{S3}'\n")
    result = CliRunner().invoke(app, [*command, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert "PULUMI_CONFIG_PASSPHRASE" in result.output
