"""Wiring: build the source, filters, image gate, stack gateway and reconciler from validated Settings.

The only module that knows every concrete class. The CLI asks it for a ready :class:`Driver`; the service (the other
composition root, prenv.service.runner) asks for the :class:`Parts` first, builds its wrappers around the real
gateway and source, and then has the reconciler built over those wrappers, so that nothing is replaced afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prenv import naming, stackconfig, template
from prenv.errors import ConfigError
from prenv.filters import FilterResult, PullRequestFilter, compile_filters
from prenv.gateway import gateway_for
from prenv.gateway.base import StackGateway
from prenv.gateway.workspace import PulumiGateway
from prenv.model import Plan, PullRequest
from prenv.reconcile import Outcome, Reconciler, ReconcileSettings
from prenv.settings import Settings
from prenv.sleep import SleepPolicy, SleepSource
from prenv.sources.approvals import ApprovalSource
from prenv.sources.base import ImageGate, PullRequestSource
from prenv.ttl import TtlPolicy, TtlSource, parse_duration

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything the reconciler is built from that does not depend on who listens to it."""

    settings: Settings
    template: stackconfig.Template
    config_hash: str
    gateway: PulumiGateway
    """The real stack gateway."""
    source: PullRequestSource
    """The real PR source; for GitHub with commands on, wrapped to report forks' approved commits
    (prenv.sources.approvals)."""
    approvals: ApprovalSource | None = None
    """That wrapper (an ``ApprovalSource``), or None; commands tell it of new approvals."""


@dataclass(frozen=True, slots=True)
class Driver:
    """What the CLI works with: the parts and a reconciler over the real gateway and source."""

    settings: Settings
    template: stackconfig.Template
    config_hash: str
    gateway: PulumiGateway
    source: PullRequestSource
    reconciler: Reconciler
    ttl: TtlSource | None = None
    """The TTL wrapper the reconciler reads PRs through (None: TTLs off, or a branch source)."""
    sleep: SleepSource | None = None
    """The sleep wrapper under it (None: a branch source, which has no commands to wake one with)."""


def build_source(s: Settings) -> PullRequestSource:
    src = s.source
    if src.type == "file":
        from prenv.sources.file import FileSource

        return FileSource(src.file.path)
    if src.type in ("gitlab", "gitlab-branches"):
        from prenv.sources.gitlab import GitLabBranchSource, GitLabSource

        gl = src.gitlab
        kind = GitLabSource if src.type == "gitlab" else GitLabBranchSource
        return kind(
            gl.project,
            token=gitlab_token(s),
            job_token=gl.job_token.get_secret_value() if gl.job_token else None,
            base_url=gl.base_url,
            ca_bundle=gl.ca_bundle,
            timeout=gl.timeout,
        )
    if src.type in ("github", "github-branches"):
        from prenv.sources.github import GitHubAppCredentials, GitHubBranchSource, GitHubSource

        gh = src.github
        token = gh.token.get_secret_value() if gh.token else None
        if token is None and gh.token_file is not None:
            token = gh.token_file.read_text().strip()
        app = None
        if gh.app_id is not None:
            if gh.app_private_key_file is None or gh.app_installation_id is None:
                raise ConfigError("source.github.app_id", "needs app_private_key_file and app_installation_id")
            app = GitHubAppCredentials(gh.app_id, gh.app_private_key_file, gh.app_installation_id)
        github_kind = GitHubSource if src.type == "github" else GitHubBranchSource
        return github_kind(gh.repository, token=token, app=app, base_url=gh.base_url, timeout=gh.timeout)
    from prenv.sources.postgres import PostgresTableSource

    assert src.postgres.dsn is not None
    return PostgresTableSource(src.postgres.dsn.get_secret_value(), table=src.postgres.table)


def gitlab_token(s: Settings) -> str | None:
    """The GitLab access token: ``source.gitlab.token`` (env), else the content of ``source.gitlab.token_file``.

    Raises:
        ConfigError: the token file cannot be read.
    """
    gl = s.source.gitlab
    if gl.token is not None:
        return gl.token.get_secret_value()
    if gl.token_file is None:
        return None
    try:
        return gl.token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("source.gitlab.token_file", "cannot read the file") from e


def build_image_gate(s: Settings) -> ImageGate | None:
    g = s.image_gate
    if g.type == "none":
        return None
    from prenv.sources.imagegate import EcrImageGate

    if not g.repository:
        raise ConfigError("image_gate.repository", "is required when image_gate.type is ecr")
    return EcrImageGate(g.repository, g.region, g.endpoint_url)


def pulumi_environment(s: Settings) -> dict[str, str]:
    """The environment every pulumi run gets: the toolchain's, a secrets passphrase when the backend may use the
    development one (ConfigError when a shared backend has none: prenv.gateway.secrets), the admin DSN the program
    needs."""
    from prenv.gateway.secrets import secrets_env
    from prenv.toolchain import pulumi_env
    from prenv.toolchain.env import DEV_PASSPHRASE

    env = {**os.environ, **pulumi_env(dev_passphrase=False)}
    env.update(
        secrets_env(s.state.backend, env, secrets_provider=s.state.secrets_provider, dev_passphrase=DEV_PASSPHRASE)
    )
    if s.database.admin_dsn is not None:
        env["PRENV_DATABASE_ADMIN_DSN"] = s.database.admin_dsn.get_secret_value()
    return env


def session_dir() -> Path:
    """Where running pulumi sessions are recorded: under the state dir (``$PRENV_STATE_DIR`` or the checkout's
    ``.state``), shared by every driver of this machine, so that one started after another crashed ends what that
    one left (prenv.gateway.sessions)."""
    from prenv.cluster.layout import default_state_dir

    return default_state_dir() / "pulumi-sessions"


def build_gateway(s: Settings) -> PulumiGateway:
    """The stack gateway; first ends the pulumi sessions that drivers which are gone left running."""
    from prenv.gateway.sessions import end_orphaned_sessions
    from prenv.toolchain import cache_dir

    sessions = session_dir()
    end_orphaned_sessions(sessions)
    return gateway_for(
        s.project_dir,
        s.state.backend,
        pulumi_environment(s),
        pulumi_root=cache_dir(),
        stale_lock_seconds=s.reconcile.stale_lock_seconds,
        secrets_provider=s.state.secrets_provider,
        session_dir=sessions,
    )


def build_parts(
    s: Settings,
    *,
    source: PullRequestSource | None = None,
    on_awaiting: Callable[[PullRequest, str], None] | None = None,
) -> Parts:
    """The template and its hash, the stack gateway and the PR source (``source`` replaces the configured one).

    Args:
        s: validated settings.
        source: replaces the configured source.
        on_awaiting: told when a fork's PR moves past its approved commit (see prenv.sources.approvals).
    """
    gateway = build_gateway(s)  # first: a backend without its secrets is refused before anything else is read
    tmpl = stackconfig.load_template(template.read_template_file(s.project_dir))
    chash = stackconfig.template_hash(tmpl, app_files=template.app_files_digest(s.project_dir, tmpl))
    real = source or build_source(s)
    approvals = _approvals(s, real, on_awaiting)
    return Parts(s, tmpl, chash, gateway, approvals or real, approvals)


def _approvals(
    s: Settings, source: PullRequestSource, on_awaiting: Callable[[PullRequest, str], None] | None
) -> ApprovalSource | None:
    """The fork-approval wrapper around a GitHub source when commands are on and forks are not all allowed."""
    if s.source.type != "github" or not s.commands.enabled or s.filters.allow_forks:
        return None
    if not callable(getattr(source, "comment_bodies", None)):
        return None
    try:
        secret = s.serve.secret_bytes()
    except ConfigError:
        logger.info("no webhook secret: forks' approvals (/preview) cannot be verified, so forks get no environment")
        return None
    return ApprovalSource(source, s.source.github.repository, secret, on_awaiting=on_awaiting)


def build_reconciler(
    p: Parts,
    *,
    gateway: StackGateway | None = None,
    source: PullRequestSource | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_plan: Callable[[Plan, FilterResult], None] | None = None,
) -> Reconciler:
    """The reconciler over ``p``'s gateway and source, or over the wrappers given in their place.

    Args:
        p: from :func:`build_parts`.
        gateway: a wrapper around ``p.gateway`` (the service's observed gateway); default ``p.gateway``.
        source: a wrapper around ``p.source`` (the service's TTL source); default ``p.source``.
        on_outcome: called with every outcome.
        on_plan: called with every plan carried out (who waits for an environment, who is evicted).
    """
    r = p.settings.reconcile
    chash, prefix = p.config_hash, p.template.image.tag_prefix
    commands = p.settings.commands
    filters: PullRequestFilter = compile_filters(
        p.settings.filters,
        changed_files=getattr(p.source, "changed_files", None),
        extra_skip_labels=(commands.off_label,) if commands.enabled else (),
        keep_label=p.settings.serve.ttl.keep_label,
    )
    return Reconciler(
        source=source or p.source,
        filters=filters,
        gateway=gateway or p.gateway,
        config_hash=lambda pr: stackconfig.sleep_hash(chash, pr.asleep),
        settings=ReconcileSettings(
            parallelism=r.parallelism,
            max_teardowns_per_cycle=r.max_teardowns_per_cycle,
            backoff_base_seconds=r.backoff_base_seconds,
            backoff_max_seconds=r.backoff_max_seconds,
        ),
        image_gate=build_image_gate(p.settings),
        image_tag=lambda pr: f"{prefix}{pr.number}",
        on_outcome=on_outcome,
        on_plan=on_plan,
    )


def ttl_policy(s: Settings, tmpl: stackconfig.Template) -> TtlPolicy | None:
    """The expiry policy: the template's ``prenv:ttl`` as the default lifetime (``serve.ttl.default_hours`` overrides
    it), ``serve.ttl``'s labels; None when ``serve.ttl.enabled`` is false or the source lists branches (a release
    branch is no forgotten PR, and a branch has no labels to say preview/keep with)."""
    ttl = s.serve.ttl
    if not ttl.enabled or s.source.type.endswith("-branches"):
        return None
    default = timedelta(hours=ttl.default_hours) if ttl.default_hours is not None else parse_duration(tmpl.ttl)
    if default is None:
        raise ConfigError("prenv:ttl", f"{tmpl.ttl!r} is not a duration like 30m, 48h or 7d")
    return TtlPolicy(default, ttl.keep_label, ttl.label_prefix)


def sleep_policy(s: Settings, tmpl: stackconfig.Template) -> SleepPolicy | None:
    """When environments sleep: the template's ``prenv:sleepAfter`` (None there: only ``/preview sleep`` does it);
    None for a branch source (no PR to comment ``/preview wake`` on)."""
    if s.source.type.endswith("-branches"):
        return None
    after = None if tmpl.sleep_after is None else parse_duration(tmpl.sleep_after)
    if tmpl.sleep_after is not None and after is None:
        raise ConfigError("prenv:sleepAfter", f"{tmpl.sleep_after!r} is not a duration like 30m, 1h or 2d")
    return SleepPolicy(after)


def build(s: Settings, *, source: PullRequestSource | None = None) -> Driver:
    """Everything the CLI needs, from validated settings (``source`` replaces the configured one); the reconciler
    reads PRs through the sleep and TTL policies, as ``prenv serve``'s does."""
    p = build_parts(s, source=source)
    slept = sleep_policy(s, p.template)
    sleep = None if slept is None else SleepSource(p.source, p.gateway.list_stacks, slept)
    inner = sleep or p.source
    policy = ttl_policy(s, p.template)
    listing = sleep.listed if sleep is not None else p.gateway.list_stacks  # one listing for both wrappers
    ttl = None if policy is None else TtlSource(inner, listing, policy)
    reconciler = build_reconciler(p, source=ttl or sleep)
    return Driver(p.settings, p.template, p.config_hash, p.gateway, p.source, reconciler, ttl, sleep)


def pr_from_args(pr: int, sha: str, branch: str = "", author: str = "") -> PullRequest:
    """A PullRequest for CI mode (`prenv up --pr N --sha S`), validated like a source record."""
    number = naming.check_pr_number(pr, "--pr")
    sha = naming.check_sha(sha, "--sha")
    return PullRequest(number=number, sha=sha, branch=branch[:255], base="", author=author[:255], title="")


def project_dir_default() -> Path:
    return Path.cwd()
