"""Wiring: build the source, filters, image gate, stack gateway and reconciler from validated Settings.

The only module that knows every concrete class; the CLI and the service ask it for a ready Reconciler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prenv import naming, stackconfig, template
from prenv.errors import ConfigError
from prenv.filters import PullRequestFilter, compile_filters
from prenv.gateway import gateway_for
from prenv.gateway.workspace import PulumiGateway
from prenv.model import PullRequest
from prenv.reconcile import ImageGate, Reconciler, ReconcileSettings
from prenv.settings import Settings
from prenv.sources.base import PullRequestSource


@dataclass
class Driver:
    settings: Settings
    template: stackconfig.Template
    config_hash: str
    gateway: PulumiGateway
    reconciler: Reconciler


def build_source(s: Settings) -> PullRequestSource:
    src = s.source
    if src.type == "file":
        from prenv.sources.file import FileSource

        return FileSource(src.file.path)
    if src.type == "github":
        from prenv.sources.github import GitHubAppCredentials, GitHubSource

        gh = src.github
        token = gh.token.get_secret_value() if gh.token else None
        if token is None and gh.token_file is not None:
            token = gh.token_file.read_text().strip()
        app = None
        if gh.app_id is not None:
            if gh.app_private_key_file is None or gh.app_installation_id is None:
                raise ConfigError("source.github.app_id", "needs app_private_key_file and app_installation_id")
            app = GitHubAppCredentials(gh.app_id, gh.app_private_key_file, gh.app_installation_id)
        return GitHubSource(gh.repository, token=token, app=app, base_url=gh.base_url, timeout=gh.timeout)
    from prenv.sources.postgres import PostgresTableSource

    assert src.postgres.dsn is not None
    return PostgresTableSource(src.postgres.dsn.get_secret_value(), table=src.postgres.table)


def build_image_gate(s: Settings) -> ImageGate | None:
    g = s.image_gate
    if g.type == "none":
        return None
    from prenv.imagegate import EcrImageGate

    if not g.repository:
        raise ConfigError("image_gate.repository", "is required when image_gate.type is ecr")
    return EcrImageGate(g.repository, g.region, g.endpoint_url)


def pulumi_environment(s: Settings) -> dict[str, str]:
    """The environment every pulumi run gets: the toolchain's, plus the admin DSN the program needs."""
    from prenv.toolchain import pulumi_env

    env = {**os.environ, **pulumi_env()}
    if s.database.admin_dsn is not None:
        env["PRENV_DATABASE_ADMIN_DSN"] = s.database.admin_dsn.get_secret_value()
    return env


def build_gateway(s: Settings) -> PulumiGateway:
    from prenv.toolchain import cache_dir

    return gateway_for(
        s.project_dir,
        s.state.backend,
        pulumi_environment(s),
        pulumi_root=cache_dir(),
        stale_lock_seconds=s.reconcile.stale_lock_seconds,
    )


def build(s: Settings, *, source: PullRequestSource | None = None) -> Driver:
    tmpl = stackconfig.load_template(template.read_template_file(s.project_dir))
    chash = stackconfig.template_hash(tmpl)
    filters: PullRequestFilter = compile_filters(s.filters)
    gateway = build_gateway(s)
    r = s.reconcile
    reconciler = Reconciler(
        source=source or build_source(s),
        filters=filters,
        gateway=gateway,
        config_hash=lambda _pr: chash,
        settings=ReconcileSettings(
            parallelism=r.parallelism,
            max_teardowns_per_cycle=r.max_teardowns_per_cycle,
            backoff_base_seconds=r.backoff_base_seconds,
            backoff_max_seconds=r.backoff_max_seconds,
        ),
        image_gate=build_image_gate(s),
        image_tag=lambda pr: f"{tmpl.image.tag_prefix}{pr.number}",
    )
    return Driver(s, tmpl, chash, gateway, reconciler)


def pr_from_args(pr: int, sha: str, branch: str = "", author: str = "") -> PullRequest:
    """A PullRequest for CI mode (`prenv up --pr N --sha S`), validated like a source record."""
    number = naming.check_pr_number(pr, "--pr")
    if not stackconfig._SHA.match(sha):
        raise ConfigError("--sha", "must be a lower-case hex commit sha (7 to 40 characters)")
    return PullRequest(number=number, sha=sha, branch=branch[:255], base="", author=author[:255], title="")


def project_dir_default() -> Path:
    return Path.cwd()
