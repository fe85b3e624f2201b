"""prenv's own configuration: one file (``prenv.yaml``) plus environment variables, validated once at start-up.

Precedence: environment (``PRENV_<SECTION>__<KEY>``, e.g. ``PRENV_RECONCILE__PARALLELISM=4``) over the file over
defaults. Secrets (GitHub token, database admin DSN, webhook secret, Pulumi passphrase) come only from the
environment or from files named here, are held as ``SecretStr`` and never appear in ``repr`` or logs.

Errors name the key as it is written in prenv.yaml (``source.github.repository``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from prenv.errors import ConfigError
from prenv.filters import FilterSettings

DEFAULT_FILE = "prenv.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSourceSettings(_Section):
    path: Path = Path("prs.yaml")


class GitHubSettings(_Section):
    repository: str = ""
    base_url: str = "https://api.github.com"
    token: SecretStr | None = None  # from PRENV_SOURCE__GITHUB__TOKEN or GITHUB_TOKEN
    token_file: Path | None = None
    app_id: int | None = None
    app_private_key_file: Path | None = None
    app_installation_id: int | None = None
    timeout: int = 10


class PostgresSourceSettings(_Section):
    dsn: SecretStr | None = None  # from PRENV_SOURCE__POSTGRES__DSN
    table: str = "prenv_pull_requests"


class SourceSettings(_Section):
    type: Literal["file", "github", "postgres"] = "file"
    file: FileSourceSettings = Field(default_factory=FileSourceSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    postgres: PostgresSourceSettings = Field(default_factory=PostgresSourceSettings)

    @model_validator(mode="after")
    def _complete(self) -> SourceSettings:
        if self.type == "github" and not self.github.repository:
            raise ValueError("source.github.repository is required when source.type is github")
        if self.type == "postgres" and self.postgres.dsn is None:
            raise ValueError("source.postgres.dsn is required when source.type is postgres (set it in the env)")
        return self


class ReconcileSection(_Section):
    parallelism: int = Field(2, ge=1, le=32)
    max_teardowns_per_cycle: int = Field(5, ge=0)
    backoff_base_seconds: float = Field(5.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    stale_lock_seconds: float = Field(900.0, gt=0)


class ImageGateSettings(_Section):
    type: Literal["none", "ecr"] = "none"
    repository: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None


class StateSettings(_Section):
    backend: str = "file://.state/pulumi"  # file://, s3://bucket?region=…&endpoint=…, or https://api.pulumi.com


class DatabaseSettings(_Section):
    admin_dsn: SecretStr | None = None  # from PRENV_DATABASE__ADMIN_DSN or PRENV_DATABASE_ADMIN_DSN


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRENV_", env_nested_delimiter="__", extra="forbid", frozen=True)

    project_dir: Path = Path(".")
    source: SourceSettings = Field(default_factory=SourceSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    reconcile: ReconcileSection = Field(default_factory=ReconcileSection)
    image_gate: ImageGateSettings = Field(default_factory=ImageGateSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    serve: dict[str, Any] = Field(default_factory=dict)
    """The ``serve:`` section, validated by prenv.service.settings (only `prenv serve` reads it)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load prenv.yaml (if present) under the environment; relative paths resolve against the file's folder."""
    env = os.environ if environ is None else environ
    path = path or Path(env.get("PRENV_CONFIG", DEFAULT_FILE))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(str(path), f"is not valid YAML ({e.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise ConfigError(str(path), "must be a mapping")
    _aliases(data, env)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or str(path)
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(key, msg) from None
    base = path.resolve().parent if path.exists() else Path.cwd()
    return _resolve(settings, base)


def _aliases(data: dict[str, Any], env: os._Environ[str] | dict[str, str]) -> None:
    """Well-known variable names that users already have set."""
    if "GITHUB_TOKEN" in env and "PRENV_SOURCE__GITHUB__TOKEN" not in env:
        data.setdefault("source", {}).setdefault("github", {}).setdefault("token", env["GITHUB_TOKEN"])
    if "PRENV_DATABASE_ADMIN_DSN" in env and "PRENV_DATABASE__ADMIN_DSN" not in env:
        data.setdefault("database", {}).setdefault("admin_dsn", env["PRENV_DATABASE_ADMIN_DSN"])


def _resolve(s: Settings, base: Path) -> Settings:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    backend = s.state.backend
    if backend.startswith("file://") and not backend.startswith("file:///") and not backend.startswith("file://~"):
        backend = "file://" + str(rel(Path(backend.removeprefix("file://"))))
    source = s.source.model_copy(update={"file": FileSourceSettings(path=rel(s.source.file.path))})
    return s.model_copy(
        update={
            "project_dir": rel(s.project_dir),
            "source": source,
            "state": StateSettings(backend=backend),
        }
    )
