"""The HTTP face of the service (Starlette): the GitHub webhook endpoint, health, readiness and metrics.

Only bytes move here; every rule lives in prenv.service.webhooks (what a delivery means) and prenv.service.service
(what happens next). The order of checks is deliberate: draining (503), then size (413, counted while the body
streams in, so a huge body is never held in memory), then the signature (401) before anything else is looked at,
then redelivery, then meaning. Responses never echo request content or the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from prenv.service.metrics import CONTENT_TYPE
from prenv.service.service import Service
from prenv.service.webhooks import Verdict, decide, event_label, verify

logger = logging.getLogger(__name__)


def create_app(service: Service, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. With ``manage_lifecycle`` its lifespan starts the service and drains it on shutdown."""

    async def webhook(request: Request) -> Response:
        event = request.headers.get("x-github-event")
        label = event_label(event)

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
        if not verify(service.secret, bytes(body), request.headers.get("x-hub-signature-256")):
            logger.warning("webhook rejected: missing or invalid signature (event %s)", label)
            return answer(401, "unauthorized")
        delivery = request.headers.get("x-github-delivery")
        if delivery and not service.deliveries.first_time(delivery):
            return answer(200, "duplicate")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return answer(400, "bad-request")
        decision = decide(event, payload, service.options.repository)
        if decision.verdict is Verdict.PONG:
            return answer(200, "pong")
        if decision.verdict is not Verdict.RECONCILE or decision.pr is None:
            return answer(202, "ignored", reason=decision.verdict.value)
        if not service.enqueue(decision.pr, decision.action):
            return answer(503, "shutting-down")
        logger.info("webhook %s/%s: PR %s queued", event, decision.action, decision.pr)
        return answer(202, "queued", pr=decision.pr)

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
            Route("/webhooks/github", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
