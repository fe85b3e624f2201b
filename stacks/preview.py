"""The per-PR stack program: template + PR values → one validated StackConfig → one PreviewEnvironment.

Validation happens before any resource is registered, so bad config fails the preview with a message naming the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.config

from components import workload
from components.environment import DATABASE_SECRET, PreviewEnvironment, PreviewEnvironmentArgs
from prenv import naming, stackconfig, template
from prenv.errors import ConfigError

ADMIN_DSN_KEY = "databaseAdminDsn"
ADMIN_DSN_ENV = "PRENV_DATABASE_ADMIN_DSN"
CREATED_AT_KEY = naming.CREATED_AT_KEY


def stack_values() -> dict[str, Any]:
    """This stack's own ``prenv:`` config (decrypted secrets included), namespace stripped."""
    raw: dict[str, Any] = pulumi.runtime.config.CONFIG.get()
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{stackconfig.NAMESPACE}:")}


def load(project_dir: Path, stack: str, values: dict[str, Any]) -> stackconfig.StackConfig:
    """The stack's validated config. The stack name is the authority on the environment's number and, for a branch
    environment (``br-<slug>-<digits>``), its slug: ``prenv:pr`` and ``prenv:slug``, when set, must agree with it,
    so that CI's ``pulumi up -s <stack>`` names everything exactly as the driver's run does."""
    parsed = naming.parse_stack(stack)
    if parsed is None:
        raise ConfigError(
            "stack", f"{stack!r} is not a PR stack; PR stacks are named pr-<number> (branches br-<slug>-<digits>)"
        )
    pr = parsed.number
    values = dict(values)
    if "pr" in values and str(values["pr"]).strip() != str(pr):
        raise ConfigError("prenv:pr", f"is {values['pr']!r} but the stack is {stack}; they must agree")
    if values.get("slug") is not None and values["slug"] != parsed.slug:
        raise ConfigError("prenv:slug", f"is {values['slug']!r} but the stack is {stack}; they must agree")
    values["pr"] = pr
    values["slug"] = parsed.slug
    merged = template.effective(template.read_template_file(project_dir), values)
    merged.pop(ADMIN_DSN_KEY, None)
    merged.pop(CREATED_AT_KEY, None)
    return stackconfig.load(merged)


def run(project_dir: Path) -> None:
    values = stack_values()
    cfg = load(project_dir, pulumi.get_stack(), values)
    t = cfg.template

    # A chart, Kustomize directory or manifests are read, filled and render-checked here, before the first resource
    # is registered: bad input fails the run with nothing created.
    prepared = None
    if t.app.kind != "services":
        prepared = workload.prepare(cfg, project_dir, DATABASE_SECRET if t.database.enabled else None)

    admin_dsn: pulumi.Input[str] | None = None
    if t.database.enabled:
        dsn = values.get(ADMIN_DSN_KEY) or os.environ.get(ADMIN_DSN_ENV)
        if not dsn:
            raise ConfigError(
                f"prenv:{ADMIN_DSN_KEY}",
                f"the database is enabled but no admin DSN is set: export {ADMIN_DSN_ENV} or "
                f"`pulumi config set --secret prenv:{ADMIN_DSN_KEY} …`",
            )
        admin_dsn = pulumi.Output.secret(str(dsn))

    app_secrets = _fetch_app_secrets(cfg) if t.secrets.source == "aws-secrets-manager" else None

    wildcard_cert = wildcard_key = pull_secret_config = None
    if t.tls.mode == "wildcard" or t.image.pull_secret:
        shared = pulumi.StackReference(str(t.shared_stack))
        if t.tls.mode == "wildcard":
            wildcard_cert = shared.require_output("wildcardCert")
            wildcard_key = shared.require_output("wildcardKey")
        if t.image.pull_secret:
            pull_secret_config = shared.require_output("pullSecretConfig")

    created_at = str(values.get(CREATED_AT_KEY) or naming.created_at())
    env = PreviewEnvironment(
        "env",
        PreviewEnvironmentArgs(
            config=cfg,
            created_at=created_at,
            admin_dsn=admin_dsn,
            app_secrets=app_secrets,
            wildcard_cert=wildcard_cert,
            wildcard_key=wildcard_key,
            workload=prepared,
            pull_secret_config=pull_secret_config,
        ),
    )
    pulumi.export("pr", cfg.pr.pr)
    pulumi.export("url", env.url)
    pulumi.export("namespace", env.namespace)
    pulumi.export("database", env.database)
    pulumi.export("sha", env.sha)
    chash = stackconfig.template_hash(t, cfg.pr.image_tag, template.app_files_digest(project_dir, t))
    pulumi.export("configHash", stackconfig.sleep_hash(chash, cfg.pr.asleep))


def _fetch_app_secrets(cfg: stackconfig.StackConfig) -> dict[str, str]:
    import boto3

    from components import secrets

    s = cfg.template.secrets
    client = boto3.client("secretsmanager", region_name=s.region, endpoint_url=s.endpoint_url)
    return secrets.fetch(str(s.prefix), client=client)
