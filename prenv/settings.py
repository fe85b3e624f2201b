"""prenv's own configuration: one file (``prenv.yaml``) plus environment variables, validated once at start-up.

One tree (:class:`Settings`) for the driver and ``prenv serve`` alike, one loader (:func:`load`), one environment
mapping: ``PRENV_<SECTION>__<KEY>`` (pydantic-settings' nested delimiter), e.g. ``PRENV_RECONCILE__PARALLELISM=4`` or
``PRENV_SERVE__TTL__DEFAULT_HOURS=24``. Precedence: that variable, then a well-known alias (below), then the file,
then the defaults.

Aliases, for names users and manifests already set:

=============================  ======================================
``GITHUB_TOKEN``               ``source.github.token``
``GITLAB_TOKEN``               ``source.gitlab.token``
``CI_JOB_TOKEN``               ``source.gitlab.job_token`` (set by GitLab CI in every job)
``PRENV_DATABASE_ADMIN_DSN``   ``database.admin_dsn``
``PRENV_LEADER_ELECTION``      ``serve.leader_election.enabled`` (the in-cluster install sets ``true``)
=============================  ======================================

Secrets (GitHub and GitLab tokens, database admin DSN, webhook secret) come only from the environment or from files
named here, are held as ``SecretStr`` and never appear in ``repr`` or logs. The webhook secret comes only from
``PRENV_WEBHOOK_SECRET`` or the file named by ``serve.webhook_secret_file``; written into prenv.yaml it is refused.

Errors name the key as it is written in prenv.yaml (``source.github.repository``, ``serve.ttl.default_hours``), also
when the bad value came from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from prenv import naming
from prenv.errors import ConfigError
from prenv.filters import FilterSettings
from prenv.validation import config_error

DEFAULT_FILE = "prenv.yaml"
CONFIG_ENV = "PRENV_CONFIG"
WEBHOOK_SECRET_ENV = "PRENV_WEBHOOK_SECRET"  # noqa: S105 (the variable name, not a secret)
# Well-known variable → the key it sets, below the PRENV_<SECTION>__<KEY> form and above the file.
ALIASES: dict[str, tuple[str, ...]] = {
    "GITHUB_TOKEN": ("source", "github", "token"),
    "GITLAB_TOKEN": ("source", "gitlab", "token"),
    "CI_JOB_TOKEN": ("source", "gitlab", "job_token"),
    "PRENV_DATABASE_ADMIN_DSN": ("database", "admin_dsn"),
    "PRENV_LEADER_ELECTION": ("serve", "leader_election", "enabled"),
}


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


class GitLabSettings(_Section):
    """A GitLab project on gitlab.com or a self-managed instance (``source.type: gitlab`` / ``gitlab-branches``)."""

    project: str = ""
    """``group/subgroup/name`` or the numeric project id."""
    base_url: str = "https://gitlab.com"
    """The instance's root URL (without ``/api/v4``)."""
    token: SecretStr | None = None  # from PRENV_SOURCE__GITLAB__TOKEN or GITLAB_TOKEN
    token_file: Path | None = None
    job_token: SecretStr | None = None  # from PRENV_SOURCE__GITLAB__JOB_TOKEN or CI_JOB_TOKEN; a token wins
    ca_bundle: Path | None = None
    """A PEM bundle to verify a self-managed instance's certificate with; default: the system's trust store."""
    timeout: int = Field(10, ge=1)


class PostgresSourceSettings(_Section):
    dsn: SecretStr | None = None  # from PRENV_SOURCE__POSTGRES__DSN
    table: str = "prenv_pull_requests"


class SourceSettings(_Section):
    type: Literal["file", "github", "postgres", "gitlab", "github-branches", "gitlab-branches"] = "file"
    """``*-branches``: one environment per branch matching ``filters.branch_include`` (see prenv.sources.branches)."""
    file: FileSourceSettings = Field(default_factory=FileSourceSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    gitlab: GitLabSettings = Field(default_factory=GitLabSettings)
    postgres: PostgresSourceSettings = Field(default_factory=PostgresSourceSettings)

    @model_validator(mode="after")
    def _complete(self) -> SourceSettings:
        if self.type in ("github", "github-branches") and not self.github.repository:
            raise ValueError(f"source.github.repository is required when source.type is {self.type}")
        if self.type in ("gitlab", "gitlab-branches") and not self.gitlab.project:
            raise ValueError(f"source.gitlab.project is required when source.type is {self.type}")
        if self.type == "postgres" and self.postgres.dsn is None:
            raise ValueError("source.postgres.dsn is required when source.type is postgres (set it in the env)")
        return self


class ReconcileSection(_Section):
    parallelism: int = Field(2, ge=1, le=32)
    drift_check_seconds: float = Field(0.0, ge=0)
    """Under ``prenv serve``: check each up-to-date environment for drift (``pulumi preview --refresh``) when its
    last check is older than this; 0 turns the background check off (``prenv drift`` still runs one)."""
    drift_checks_per_hour: int = Field(12, ge=1, le=3600)
    """At most this many drift checks (pulumi processes; twice that when healing) per hour, whatever the count of
    environments."""
    self_heal: bool = False
    """Drift found is put back at once (``pulumi up --refresh``), as Argo CD's and Flux's self-heal do."""
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
    # A cloud KMS for new stacks' secrets (awskms://…, gcpkms://…, azurekeyvault://…, hashivault://…); without one, a
    # DIY backend other than file:// needs PULUMI_CONFIG_PASSPHRASE(_FILE) (prenv.gateway.secrets).
    secrets_provider: str | None = None


class DatabaseSettings(_Section):
    admin_dsn: SecretStr | None = None  # from PRENV_DATABASE__ADMIN_DSN or PRENV_DATABASE_ADMIN_DSN


class TtlSection(_Section):
    """Environment expiry in ``prenv serve``, ``prenv sync`` and ``prenv gc --expired`` (see prenv.ttl for the rule)."""

    enabled: bool = True
    default_hours: float | None = Field(None, gt=0)
    """Overrides the template's ``prenv:ttl`` (Pulumi.preview.yaml, 48h), the default lifetime; labels override both."""
    keep_label: str = "preview/keep"
    label_prefix: str = "preview/ttl-"


class FeedbackSection(_Section):
    """What the PR is told: one comment edited in place, and GitHub Deployments for ``pr-<n>``."""

    enabled: bool = True
    health_check: bool = False
    """Poll the environment URL until it answers 200 before announcing success."""
    health_check_timeout_seconds: float = Field(120.0, gt=0)
    health_check_interval_seconds: float = Field(2.0, gt=0)


class LeaderSection(_Section):
    """Leader election among replicas (Kubernetes Lease); on in the in-cluster install (``PRENV_LEADER_ELECTION``)."""

    enabled: bool = False
    namespace: str = naming.SYSTEM_NAMESPACE
    lease_name: str = "prenv-driver"
    lease_seconds: float = Field(15.0, gt=2)
    advertise_url: str | None = None
    """This replica's own base URL (``http://<pod IP>:8080``), written into the Lease while it leads, so followers
    relay the webhooks they receive to it; the in-cluster install sets it from the pod's IP. Unset: a follower
    answers webhooks with 503 (``no-leader``) and the leader's resync catches up."""

    @model_validator(mode="after")
    def _check_url(self) -> LeaderSection:
        url = self.advertise_url
        parts = urlsplit(url) if url is not None else None
        if parts is not None and (
            parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query
        ):
            raise ValueError(f"serve.leader_election.advertise_url: {url!r} is not an http(s)://host[:port] URL")
        return self


Association = Literal[
    "OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "MANNEQUIN", "NONE"
]


class CommandsSection(_Section):
    """``/preview`` comment commands on GitHub PRs (prenv.service.commands) and fork approvals
    (prenv.sources.approvals)."""

    enabled: bool = True
    allowed_associations: tuple[Association, ...] = ("OWNER", "MEMBER", "COLLABORATOR")
    """GitHub's ``author_association`` a commenter needs; anyone else's commands get no answer and do nothing."""
    off_label: str = Field("preview/off", min_length=1, max_length=50)
    """Added by ``/preview destroy`` and removed by ``/preview``; a PR carrying it gets no environment."""


class ServeSettings(_Section):
    """The ``serve:`` section: how ``prenv serve`` listens, verifies webhooks, resyncs, drains and expires."""

    # In a pod the service must listen on every interface; the ingress/service in front of it decides exposure.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = Field(8080, ge=1, le=65535)
    repository: str | None = None
    """Only webhooks of this GitHub ``owner/name`` (GitLab: ``group/name`` or project id) are acted on; default:
    ``source.github.repository`` or ``source.gitlab.project``."""
    webhook_secret: SecretStr | None = Field(None, exclude=True, repr=False)
    """Set by :func:`load` from ``PRENV_WEBHOOK_SECRET``, never from prenv.yaml."""
    webhook_secret_file: Path | None = None
    """Read when the secret is asked for (by ``prenv serve`` at start), so other commands never need the file."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    resync_seconds: float = Field(300.0, gt=0)
    shutdown_grace_seconds: float = Field(600.0, ge=0)
    workers: int = Field(2, ge=1, le=32)
    """How many per-PR reconciles run at once (each still bounded by reconcile.parallelism)."""
    delivery_cache_size: int = Field(10_000, ge=1)
    """How many recent ``X-GitHub-Delivery`` ids are remembered to drop redeliveries."""
    ttl: TtlSection = Field(default_factory=TtlSection)
    feedback: FeedbackSection = Field(default_factory=FeedbackSection)
    leader_election: LeaderSection = Field(default_factory=LeaderSection)

    def secret_bytes(self) -> bytes:
        """The webhook secret as HMAC key bytes: ``PRENV_WEBHOOK_SECRET``, else the content of ``webhook_secret_file``.

        Raises:
            ConfigError: neither is set, or the file cannot be read or is empty.
        """
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value().encode()
        if self.webhook_secret_file is None:
            raise ConfigError("serve.webhook_secret_file", f"no webhook secret: set {WEBHOOK_SECRET_ENV} or this file")
        try:
            text = self.webhook_secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("serve.webhook_secret_file", "cannot read the file") from e
        if not text:
            raise ConfigError("serve.webhook_secret_file", "the file is empty")
        return text.encode()


class Settings(BaseSettings):
    """The whole of prenv.yaml. Build it with :func:`load`; constructing it directly reads no environment."""

    model_config = SettingsConfigDict(env_prefix="PRENV_", env_nested_delimiter="__", extra="forbid", frozen=True)

    project_dir: Path = Path(".")
    source: SourceSettings = Field(default_factory=SourceSettings)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    reconcile: ReconcileSection = Field(default_factory=ReconcileSection)
    image_gate: ImageGateSettings = Field(default_factory=ImageGateSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    commands: CommandsSection = Field(default_factory=CommandsSection)

    @model_validator(mode="after")
    def _branches_need_a_pattern(self) -> Settings:
        # Without an include pattern a branch source would give every branch (main, dependabot/...) an environment.
        if self.source.type.endswith("-branches") and not self.filters.branch_include:
            # ConfigError, not ValueError: pydantic lets it through, so the message names the key, not the file.
            raise ConfigError("filters.branch_include", f"is required when source.type is {self.source.type}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment is read by load(), from the mapping it is given; never behind its back from os.environ.
        return (init_settings,)


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source (prefix, ``__`` nesting, JSON for lists) over a given mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The one override needed: the variables come from the mapping load() was given, not from os.environ.
        return {name.lower(): value for name, value in self._environ.items()}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read prenv.yaml (if present) once, under the environment, and validate the whole tree.

    Args:
        path: the file; default ``$PRENV_CONFIG`` or ./prenv.yaml.
        environ: the environment to read; default ``os.environ``. Nothing else is read from the environment.

    Returns:
        The settings, relative paths resolved against the file's folder, ``PRENV_WEBHOOK_SECRET`` taken.

    Raises:
        ConfigError: naming the key as written in prenv.yaml.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    path = path or Path(env.get(CONFIG_ENV, DEFAULT_FILE))
    data = _read(path)
    serve = data.get("serve")
    if isinstance(serve, dict) and "webhook_secret" in serve:
        raise ConfigError(
            "serve.webhook_secret", f"secrets do not belong in the file: set {WEBHOOK_SECRET_ENV} instead"
        )
    overlay = _EnvSource(env)()
    _drop(overlay, ("serve", "webhook_secret"))
    for name, key in ALIASES.items():
        if name in env:
            _set_default(overlay, key, env[name])
    try:
        settings = Settings(**_merge(data, overlay))
    except ValidationError as e:
        raise config_error(e, fallback=str(path)) from None
    base = path.resolve().parent if path.exists() else Path.cwd()
    settings = _resolve(settings, base)
    secret = SecretStr(env[WEBHOOK_SECRET_ENV]) if env.get(WEBHOOK_SECRET_ENV) else None
    return settings.model_copy(update={"serve": settings.serve.model_copy(update={"webhook_secret": secret})})


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(str(path), f"is not valid YAML ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a mapping")
    # An empty section (``serve:`` with nothing under it) means its defaults.
    return {k: v for k, v in data.items() if v is not None}


def _merge(file: dict[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """``env`` over ``file``, mapping by mapping."""
    out = dict(file)
    for key, value in env.items():
        below = out.get(key)
        out[key] = _merge(below, value) if isinstance(value, Mapping) and isinstance(below, dict) else value
    return out


def _set_default(data: dict[str, Any], key: tuple[str, ...], value: str) -> None:
    node = data
    for part in key[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # the PRENV_<SECTION> variable set the whole section: it wins
        node = child
    node.setdefault(key[-1], value)


def _drop(data: dict[str, Any], key: tuple[str, ...]) -> None:
    node: Any = data
    for part in key[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(key[-1], None)


def _resolve(s: Settings, base: Path) -> Settings:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    backend = s.state.backend
    if backend.startswith("file://") and not backend.startswith("file:///") and not backend.startswith("file://~"):
        backend = "file://" + str(rel(Path(backend.removeprefix("file://"))))
    source = s.source.model_copy(update={"file": FileSourceSettings(path=rel(s.source.file.path))})
    secret_file = s.serve.webhook_secret_file
    return s.model_copy(
        update={
            "project_dir": rel(s.project_dir),
            "source": source,
            "state": s.state.model_copy(update={"backend": backend}),
            "serve": s.serve.model_copy(update={"webhook_secret_file": rel(secret_file) if secret_file else None}),
        }
    )
