"""Several replicas, one actor: what the service needs of leader election (prenv.leader), and the webhook relay.

Behind a Kubernetes Service a webhook reaches any replica, and GitHub does not redeliver one that failed. So a
follower does not drop what it receives: once the signature (or token) checks out, it relays the delivery — body
and headers unchanged, so the leader verifies it again — to the URL the leader advertises in its Lease, and answers
what the leader answered. A relayed delivery is never relayed twice: a replica that receives one while not (or no
longer) the leader answers 503. When no leader is known (a failover in progress) the follower answers 503 with
``Retry-After``; the new leader's first act is a full resync (:meth:`Service.leadership_changed`), so what was lost
in the failover is caught within seconds, not at the next periodic resync.

The leader keeps its Lease while it drains (a running ``pulumi up`` finishes before anyone else may act) and
releases it right after, so the other replica takes over at once instead of a lease duration later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

logger = logging.getLogger(__name__)

RELAYED_HEADER = "X-Prenv-Relayed"
"""Set on a relayed delivery; its receiver acts on it or answers 503, never relays it again."""
# Only what the leader needs to verify and identify the delivery; hop-by-hop headers stay behind.
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-hub-signature-256",
    "x-gitlab-event",
    "x-gitlab-token",
    "x-gitlab-event-uuid",
    "x-gitlab-webhook-uuid",
    "idempotency-key",
)


@dataclass(frozen=True, slots=True)
class Leadership:
    """A replica's view of the election: whether it leads, where the leader is, and how to step down."""

    is_leader: Callable[[], bool]
    leader_url: Callable[[], str | None]
    """The leader's advertised base URL (``http://<pod IP>:8080``), None when we lead or no leader is known."""
    release: Callable[[], None]
    """Stop taking part and give the Lease up if we hold it (after the drain)."""
    listeners: list[Callable[[bool], None]] = field(default_factory=list)
    """Told (from the election's thread) each time this replica becomes leader (True) or stops being it (False)."""

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self.listeners.append(listener)


@dataclass(frozen=True, slots=True)
class Relayed:
    """What the leader answered to a relayed delivery (or 503 when it could not be reached)."""

    status: int
    result: str
    extra: dict[str, object]


async def relay(base_url: str, path: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0) -> Relayed:
    """POST the delivery to the leader at ``base_url`` + ``path``; any failure to reach it is a 503."""
    kept = {k: v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
    kept[RELAYED_HEADER] = "1"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
            response = await client.post(path, content=body, headers=kept)
        answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    except (httpx.HTTPError, ValueError) as e:
        logger.warning("relay to the leader at %s failed: %s", base_url, type(e).__name__)
        return Relayed(503, "leader-unreachable", {})
    result = str(answer.pop("result", "relayed")) if isinstance(answer, dict) else "relayed"
    return Relayed(response.status_code, result, answer if isinstance(answer, dict) else {})
