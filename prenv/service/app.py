"""The HTTP face of the service (Starlette): the GitHub and GitLab webhook endpoints, health, readiness and metrics.

Only bytes move here; every rule lives in prenv.service.webhooks and prenv.service.gitlab_webhooks (what a delivery
means) and prenv.service.service (what happens next). Both endpoints check in the same deliberate order: draining
(503), then size (413, counted while the body streams in, so a huge body is never held in memory), then the
signature or token (401) before anything else is looked at, then — on a follower of a leader election — the relay to
the leader (prenv.service.leadership), then redelivery, then meaning. Responses never echo request content or the
secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from prenv.service import gitlab_webhooks, webhooks
from prenv.service.leadership import RELAYED_HEADER, relay
from prenv.service.metrics import CONTENT_TYPE
from prenv.service.service import Service
from prenv.service.webhooks import Decision, Verdict

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Provider:
    """How one forge's deliveries are read; the rules themselves live in the webhooks modules."""

    event_header: str
    label: Callable[[str | None], str]
    authentic: Callable[[Service, bytes, Mapping[str, str]], bool]
    delivery: Callable[[Mapping[str, str]], str | None]
    decide: Callable[[Service, str | None, object], Decision]


_GITHUB = _Provider(
    event_header="x-github-event",
    label=webhooks.event_label,
    authentic=lambda service, body, headers: webhooks.verify(service.secret, body, headers.get("x-hub-signature-256")),
    delivery=lambda headers: headers.get("x-github-delivery"),
    decide=lambda service, event, payload: webhooks.decide(
        event, payload, service.options.repository, branches=service.options.branches
    ),
)
_GITLAB = _Provider(
    event_header="x-gitlab-event",
    label=gitlab_webhooks.event_label,
    authentic=lambda service, _body, headers: gitlab_webhooks.verify_token(
        service.secret, headers.get("x-gitlab-token")
    ),
    delivery=gitlab_webhooks.delivery_id,
    decide=lambda service, event, payload: gitlab_webhooks.decide(
        event, payload, service.options.gitlab_project, branches=service.options.branches
    ),
)


def create_app(service: Service, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. With ``manage_lifecycle`` its lifespan starts the service and drains it on shutdown."""

    async def github(request: Request) -> Response:
        return await webhook(request, _GITHUB)

    async def gitlab(request: Request) -> Response:
        return await webhook(request, _GITLAB)

    async def webhook(request: Request, provider: _Provider) -> Response:
        event = request.headers.get(provider.event_header)
        label = provider.label(event)

        def answer(status: int, result: str, **extra: object) -> Response:
            service.metrics.delivery(label, result)
            headers = {"Retry-After": "30"} if status == 503 else None
            return JSONResponse({"result": result, **extra}, status_code=status, headers=headers)

        if service.draining:
            return answer(503, "shutting-down")
        limit = service.options.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return answer(400, "bad-request")
            if int(declared) > limit:
                return answer(413, "too-large")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return answer(413, "too-large")
        except ClientDisconnect:
            return answer(400, "bad-request")
        if not provider.authentic(service, bytes(body), request.headers):
            logger.warning("webhook rejected: missing or invalid signature or token (event %s)", label)
            return answer(401, "unauthorized")
        if service.role == "follower" and service.leadership is not None:
            return await to_leader(request, bytes(body), answer)
        delivery = provider.delivery(request.headers)
        if delivery and not service.deliveries.first_time(delivery):
            return answer(200, "duplicate")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return answer(400, "bad-request")
        decision = provider.decide(service, event, payload)
        if decision.verdict is Verdict.PONG:
            return answer(200, "pong")
        if decision.verdict is Verdict.COMMAND and decision.command is not None:
            if not service.command(decision.command):
                return answer(503, "shutting-down")
            logger.info("webhook %s: a %s command on PR %s queued", label, decision.command.verb, decision.pr)
            return answer(202, "command-queued", pr=decision.pr)
        if decision.verdict is not Verdict.RECONCILE or decision.pr is None:
            return answer(202, "ignored", reason=decision.reason or decision.verdict.value)
        if not service.enqueue(decision.pr, decision.action):
            return answer(503, "shutting-down")
        logger.info("webhook %s/%s: PR %s queued", label, decision.action, decision.pr)
        return answer(202, "queued", pr=decision.pr)

    async def to_leader(request: Request, body: bytes, answer: Callable[..., Response]) -> Response:
        """A follower's answer to an authentic delivery: the leader's, relayed; 503 when there is none to ask."""
        assert service.leadership is not None
        if request.headers.get(RELAYED_HEADER):
            return answer(503, "not-leader")  # relayed once already: the leader moved meanwhile
        url = await asyncio.get_running_loop().run_in_executor(None, service.leadership.leader_url)
        if url is None:
            return answer(503, "no-leader")
        relayed = await relay(url, request.url.path, body, request.headers)
        logger.info("webhook relayed to the leader: %s %s", relayed.status, relayed.result)
        return answer(relayed.status, relayed.result, **relayed.extra)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        ready = service.ready and not service.draining
        body = {
            "ready": ready,
            "role": service.role,
            "draining": service.draining,
            "queue_depth": service.queue.depth(),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await service.drain()

    return Starlette(
        routes=[
            Route("/webhooks/github", github, methods=["POST"]),
            Route("/webhooks/gitlab", gitlab, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
