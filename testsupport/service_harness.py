"""Shared pieces for the service tests: real webhook payloads, signing, and a service over fakes."""

from __future__ import annotations

import copy
import json
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x deprecates its httpx-based TestClient in favour of httpx2, which is not a dependency here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from prenv.filters import FilterSettings, compile_filters
from prenv.gateway.fake import FakeGateway
from prenv.model import PullRequest
from prenv.reconcile import Reconciler, ReconcileSettings
from prenv.reservations import ReadReservation
from prenv.service.command_actions import CommandActions
from prenv.service.feedback import Feedback
from prenv.service.leadership import Leadership
from prenv.service.service import Service, ServiceOptions, Wiring
from prenv.service.ttl import TtlPolicy
from prenv.service.webhooks import sign
from prenv.sleep import SleepPolicy
from prenv.sources.fake import FakeSource
from prenv.stackconfig import sleep_hash

__all__ = ["TestClient"]

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "github-webhooks"  # copied from shared/fixtures
REPOSITORY = "Codertocat/Hello-World"  # the repository of every pull_request fixture
SECRET = b"s3cr3t-webhook-key-never-shown"


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a real fixture payload (``opened``, ``ping``...)."""
    return copy.deepcopy(_cache(name))


_CACHE: dict[str, dict[str, Any]] = {}


def _cache(name: str) -> dict[str, Any]:
    if name not in _CACHE:
        _CACHE[name] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return _CACHE[name]


def for_pr(name: str, number: int) -> dict[str, Any]:
    """A pull_request fixture turned into an event for PR ``number``."""
    data = payload(name)
    data["number"] = number
    data["pull_request"]["number"] = number
    return data


def headers(
    body: bytes, event: str = "pull_request", *, secret: bytes = SECRET, delivery: str | None = None
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


def encode(data: object) -> bytes:
    return json.dumps(data).encode()


def pull(n: int, sha: str = "a", **kw: Any) -> PullRequest:
    return PullRequest(
        number=n, sha=(sha * 40)[:40], branch=f"feature-{n}", base="main", author="dev", title=f"PR {n}", **kw
    )


def make_service(
    source: FakeSource | None = None,
    gateway: FakeGateway | None = None,
    *,
    feedback: Feedback | None = None,
    ttl: TtlPolicy | None = None,
    parallelism: int = 4,
    leadership: Leadership | None = None,
    commands: CommandActions | None = None,
    reservations: ReadReservation | None = None,
    sleep: SleepPolicy | None = None,
    filters: FilterSettings | None = None,
    **options: Any,
) -> Service:
    wiring = Wiring.around(gateway or FakeGateway(), source or FakeSource([pull(2)]), ttl, sleep)
    reconciler = Reconciler(
        source=wiring.source,
        filters=compile_filters(filters or FilterSettings()),
        gateway=wiring.gateway,
        config_hash=lambda pr: sleep_hash("cfg", pr.asleep),
        settings=ReconcileSettings(parallelism=parallelism),
        on_outcome=wiring.outcomes,
        on_plan=wiring.plans,
    )
    opts = {"repository": REPOSITORY, "resync_seconds": 3600.0, "retry_delay_seconds": 0.05, **options}
    return Service(
        reconciler,
        wiring,
        secret=SECRET,
        options=ServiceOptions(**opts),
        feedback=feedback,
        leadership=leadership,
        commands=commands,
        reservations=reservations,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def idle(service: Service) -> bool:
    return service.queue.depth() == 0 and not service.queue.running() and not service.gateway.active()
