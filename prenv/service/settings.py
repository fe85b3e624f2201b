"""The ``serve:`` section of prenv.yaml: how ``prenv serve`` listens, verifies webhooks, resyncs, drains and expires.

Kept apart from prenv.settings so the service can evolve without touching the driver's configuration. The same
prenv.yaml holds both: :func:`load` reads the file once, validates the ``serve:`` section here and the rest with
``prenv.settings`` (whose schema does not know ``serve:``, so that key is taken out before it sees the data).

Precedence, as for the rest of prenv: ``PRENV_SERVE__<KEY>`` (``PRENV_SERVE__TTL__DEFAULT_HOURS=24``) over the file
over defaults. The webhook secret is a secret: only ``PRENV_WEBHOOK_SECRET`` or the file named by
``serve.webhook_secret_file``; a secret written into prenv.yaml is refused. It is held as ``SecretStr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from prenv import settings as prenv_settings
from prenv.errors import ConfigError

SECRET_ENV = "PRENV_WEBHOOK_SECRET"  # noqa: S105 (the variable name, not a secret)
_ENV_PREFIX = "PRENV_SERVE__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TtlSection(_Section):
    """Environment expiry (see prenv.service.ttl for the rule)."""

    enabled: bool = True
    default_hours: float = Field(48.0, gt=0)
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
    """Leader election among replicas (Kubernetes Lease); on in the in-cluster install."""

    enabled: bool = False
    namespace: str = "prenv-system"
    lease_name: str = "prenv-driver"
    lease_seconds: float = Field(15.0, gt=2)


class ServeSettings(_Section):
    """The ``serve:`` section."""

    # In a pod the service must listen on every interface; the ingress/service in front of it decides exposure.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = Field(8080, ge=1, le=65535)
    repository: str | None = None
    """Only webhooks of this ``owner/name`` are acted on; default: ``source.github.repository``."""
    webhook_secret: SecretStr | None = Field(None, exclude=True, repr=False)
    """Set from ``PRENV_WEBHOOK_SECRET`` or ``webhook_secret_file`` by :func:`load`, never from the file."""
    webhook_secret_file: Path | None = None
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
        """The webhook secret as HMAC key bytes."""
        if self.webhook_secret is None:
            raise ConfigError("serve.webhook_secret_file", f"no webhook secret: set {SECRET_ENV} or this file")
        return self.webhook_secret.get_secret_value().encode()


def read_file(path: Path | None, environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], Path]:
    """The parsed prenv.yaml (empty when missing) and its path."""
    env = os.environ if environ is None else environ
    path = path or Path(env.get("PRENV_CONFIG", prenv_settings.DEFAULT_FILE))
    if not path.exists():
        return {}, path
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(str(path), f"is not valid YAML ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a mapping")
    return data, path


def parse(section: object, environ: Mapping[str, str] | None = None, base: Path | None = None) -> ServeSettings:
    """Validate a ``serve:`` mapping under the environment; relative paths resolve against ``base``."""
    env = os.environ if environ is None else environ
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError("serve", "must be a mapping")
    data: dict[str, Any] = {k: v for k, v in section.items()}
    if "webhook_secret" in data:
        raise ConfigError("serve.webhook_secret", f"secrets do not belong in the file: set {SECRET_ENV} instead")
    _overlay_env(data, env)
    try:
        serve = ServeSettings(**data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(["serve", *(str(p) for p in err["loc"])])
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(key, msg) from None
    secret_file = serve.webhook_secret_file
    if secret_file is not None and not secret_file.is_absolute() and base is not None:
        secret_file = (base / secret_file).resolve()
    return serve.model_copy(update={"webhook_secret_file": secret_file, "webhook_secret": _secret(env, secret_file)})


def _overlay_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(_ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(_ENV_PREFIX) :].split("__") if p]
        if not path or path == ["webhook_secret"]:
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError("serve." + ".".join(path), "conflicts with a non-mapping value in the file")
            node = child
        node[path[-1]] = value


def _secret(env: Mapping[str, str], file: Path | None) -> SecretStr | None:
    value = env.get(SECRET_ENV)
    if value:
        return SecretStr(value)
    if file is None:
        return None
    try:
        text = file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("serve.webhook_secret_file", "cannot read the file") from e
    if not text:
        raise ConfigError("serve.webhook_secret_file", "the file is empty")
    return SecretStr(text)


def load(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[prenv_settings.Settings, ServeSettings]:
    """Load prenv.yaml once: the driver's settings and their ``serve:`` section, validated here."""
    env = dict(os.environ if environ is None else environ)
    settings = prenv_settings.load(path, env)
    data, path = read_file(path, env)
    base = path.resolve().parent if path.exists() else Path.cwd()
    return settings, parse(data.get("serve"), env, base)
