"""Running ``prenv serve``: wire the service from configuration, and run it under uvicorn with a drain on SIGTERM.

uvicorn's own SIGTERM handling closes the listener at once and would cut a Pulumi update short when the grace
period of the lifespan ends; a preview environment half-updated is worse than a slow shutdown. So the first
SIGTERM/SIGINT only starts the drain (webhooks get 503, no new operation starts, readiness fails so the load
balancer moves on) and uvicorn is told to exit once running operations finished or the grace bound passed. A
second signal exits at once, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import uvicorn
from github import Auth

from prenv import driver as driver_mod
from prenv.errors import ConfigError
from prenv.filters import FilterResult
from prenv.model import PullRequest
from prenv.reservations import QuotaReader
from prenv.service.app import create_app
from prenv.service.command_actions import CommandRules, GitHubCommands
from prenv.service.dispatch import BackgroundFeedback
from prenv.service.feedback import Feedback, GitHubFeedback, NullFeedback, Phase, Report
from prenv.service.hooks import Hook
from prenv.service.leadership import Leadership
from prenv.service.metrics import RateLimitView
from prenv.service.service import Service, ServiceOptions, Wiring
from prenv.service.urlcheck import wait_until_healthy
from prenv.settings import ReconcileSection, ServeSettings, Settings
from prenv.sources.base import PullRequestSource

logger = logging.getLogger(__name__)


def build_service(settings: Settings, *, source: PullRequestSource | None = None) -> Service:
    """The service for this configuration, built in order: the driver's parts, the service's wrappers around their
    gateway and source, the reconciler over the wrappers, then the service that listens to them."""
    serve = settings.serve
    kind = settings.source.type
    awaiting: Hook[[PullRequest, str]] = Hook("awaiting approval")
    parts = driver_mod.build_parts(settings, source=source, on_awaiting=awaiting)
    ttl = driver_mod.ttl_policy(settings, parts.template)
    wiring = Wiring.around(parts.gateway, parts.source, ttl, driver_mod.sleep_policy(settings, parts.template))
    reconciler = driver_mod.build_reconciler(
        parts, gateway=wiring.gateway, source=wiring.source, on_outcome=wiring.outcomes, on_plan=wiring.plans
    )
    github = kind in ("github", "github-branches")
    gitlab = kind in ("gitlab", "gitlab-branches")
    repository = serve.repository or (settings.source.github.repository if github else None)
    project = serve.repository or (settings.source.gitlab.project if gitlab else None)
    if (repository if not gitlab else project) is None:
        logger.warning("serve: no repository configured; webhooks of any repository are acted on")
    feedback = build_feedback(settings)
    awaiting.subscribe(lambda pr, approved: feedback.report(awaiting_report(pr, approved)))
    return Service(
        reconciler,
        wiring,
        secret=serve.secret_bytes(),
        options=options_of(
            serve,
            repository,
            gitlab_project=project,
            branches=kind.endswith("-branches"),
            reconcile=settings.reconcile,
        ),
        feedback=feedback,
        # The metric is GitHub's (prenv_github_rate_limit_*); GitLab's limit is kept on its source, not exported.
        rate_limit=(lambda: _rate_limit_of(parts.source)) if github else (lambda: None),
        leadership=_elect(serve),
        commands=build_commands(settings, parts, reconciler.filters.apply) if kind == "github" else None,
        reservations=QuotaReader(parts.template.namespace_prefix, env=parts.gateway.env).read,
    )


def awaiting_report(pr: PullRequest, approved: str) -> Report:
    """What the PR is told when a fork's PR moved past its approved commit."""
    return Report(pr.number, Phase.AWAITING_APPROVAL, datetime.now(UTC), pull=pr, reason=f"commit {approved[:12]}")


def build_commands(
    settings: Settings, parts: driver_mod.Parts, filters: Callable[[list[PullRequest]], FilterResult] | None = None
) -> GitHubCommands | None:
    """``/preview`` commands for the GitHub source when ``commands.enabled``."""
    c = settings.commands
    if not c.enabled:
        return None
    gh = settings.source.github
    return GitHubCommands(
        gh.repository,
        _github_auth(settings),
        secret=settings.serve.secret_bytes(),
        rules=CommandRules(
            allowed_associations=frozenset(c.allowed_associations),
            off_label=c.off_label,
            required_labels=settings.filters.labels,
            keep_label=settings.serve.ttl.keep_label,
            allow_forks=settings.filters.allow_forks,
        ),
        approvals=parts.approvals,
        filters=filters,
        base_url=gh.base_url,
        timeout=gh.timeout,
    )


def _elect(serve: ServeSettings) -> Leadership | None:
    """Leader election when enabled (``serve.leader_election.enabled``; ``PRENV_LEADER_ELECTION`` in the pod), started
    at once; the service it is given to is told of leadership changes (:meth:`Service.leadership_changed`) once it
    exists, through ``notify``."""
    le = serve.leader_election
    if not le.enabled:
        return None
    from kubernetes import client, config

    from prenv.leader import LeaseElector

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    listeners: list[Callable[[bool], None]] = []

    def changed(leader: bool) -> None:
        for listen in listeners:
            listen(leader)

    elector = LeaseElector(
        client.CoordinationV1Api(),
        namespace=le.namespace,
        name=le.lease_name,
        lease_duration=le.lease_seconds,
        renew_deadline=le.lease_seconds * 2 / 3,
        retry_period=max(1.0, le.lease_seconds / 7),
        on_change=changed,
        url=le.advertise_url.rstrip("/") if le.advertise_url else None,
    )
    leadership = Leadership(
        is_leader=lambda: elector.is_leader, leader_url=elector.leader_url, release=elector.stop, listeners=listeners
    )
    elector.start()
    return leadership


def options_of(
    serve: ServeSettings,
    repository: str | None,
    *,
    gitlab_project: str | None = None,
    branches: bool = False,
    reconcile: ReconcileSection | None = None,
) -> ServiceOptions:
    drift = reconcile or ReconcileSection()
    return ServiceOptions(
        drift_check_seconds=drift.drift_check_seconds,
        drift_checks_per_hour=drift.drift_checks_per_hour,
        self_heal=drift.self_heal,
        repository=repository,
        gitlab_project=gitlab_project,
        branches=branches,
        max_body_bytes=serve.max_body_bytes,
        resync_seconds=serve.resync_seconds,
        shutdown_grace_seconds=serve.shutdown_grace_seconds,
        workers=serve.workers,
        delivery_cache_size=serve.delivery_cache_size,
    )


def build_feedback(settings: Settings) -> Feedback:
    """GitHub or GitLab feedback for the GitHub or GitLab source when enabled (told from a background thread, so
    operations never wait for the forge); otherwise nothing is written back (branch environments have no PR)."""
    fb = settings.serve.feedback
    if not fb.enabled or settings.source.type not in ("github", "gitlab"):
        return NullFeedback()
    health = None
    if fb.health_check:

        def health(url: str) -> bool:
            return wait_until_healthy(
                url, timeout=fb.health_check_timeout_seconds, interval=fb.health_check_interval_seconds
            )

    if settings.source.type == "gitlab":
        from prenv.service.gitlab_feedback import GitLabFeedback

        gl = settings.source.gitlab
        return BackgroundFeedback(
            GitLabFeedback(
                gl.project,
                driver_mod.gitlab_token(settings),
                base_url=gl.base_url,
                ca_bundle=gl.ca_bundle,
                health_check=health,
                timeout=gl.timeout,
            )
        )
    gh = settings.source.github
    return BackgroundFeedback(
        GitHubFeedback(
            gh.repository, _github_auth(settings), base_url=gh.base_url, health_check=health, timeout=gh.timeout
        )
    )


def _github_auth(settings: Settings) -> Auth.Auth | None:
    gh = settings.source.github
    if gh.token is not None:
        return Auth.Token(gh.token.get_secret_value())
    if gh.token_file is not None:
        try:
            return Auth.Token(gh.token_file.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("source.github.token_file", "cannot read the file") from e
    if gh.app_id is not None and gh.app_private_key_file is not None and gh.app_installation_id is not None:
        try:
            key = gh.app_private_key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("source.github.app_private_key_file", "cannot read the private key file") from e
        return Auth.AppAuth(gh.app_id, key).get_installation_auth(gh.app_installation_id)
    return None


def _rate_limit_of(source: PullRequestSource) -> RateLimitView | None:
    limit: Any = getattr(source, "rate_limit", None)
    return limit if limit is not None and hasattr(limit, "remaining") and hasattr(limit, "reset") else None


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains the service before uvicorn shuts down."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_requested:
            logger.warning("second exit signal: exiting without waiting for running operations")
            super().handle_exit(sig, frame)
            return
        # A signal handler: only set a flag; the event loop acts on it at its next tick.
        self._drain_requested = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain_then_exit(), name="drain")
        return await super().on_tick(counter)

    async def _drain_then_exit(self) -> None:
        await self.service.drain()
        # Only now, with every operation finished, may another replica act: give the Lease up at once.
        await asyncio.get_running_loop().run_in_executor(None, self.service.step_down)
        self.should_exit = True


def server(service: Service, host: str, port: int, **config: Any) -> DrainingServer:
    """An unstarted server for ``service``; ``await server.serve()`` or ``server.run()``."""
    app = create_app(service)
    cfg = uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None, access_log=False, **config)
    return DrainingServer(cfg, service)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain. Blocks."""
    service = build_service(settings)
    srv = server(service, host or settings.serve.host, port or settings.serve.port)
    srv.run()
