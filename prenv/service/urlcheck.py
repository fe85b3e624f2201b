"""Is a new environment really serving? Poll its URL until it answers 200, before telling the PR it is ready.

A successful ``pulumi up`` means the resources exist, not that the app behind the ingress answers; announcing
success too early sends reviewers to a 502. Off by default (the embedded cluster has no real pods to answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

logger = logging.getLogger(__name__)


def wait_until_healthy(
    url: str,
    *,
    timeout: float = 120.0,
    interval: float = 2.0,
    client: httpx.Client | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll ``url`` with GET until it answers 200; False when ``timeout`` seconds pass first. Never raises."""
    own = client is None
    http = client or httpx.Client(timeout=min(10.0, timeout), follow_redirects=False)
    deadline = clock() + timeout
    try:
        while True:
            try:
                if http.get(url).status_code == 200:
                    return True
            except httpx.HTTPError as e:
                logger.debug("health check of %s: %s", url, type(e).__name__)
            if clock() + interval > deadline:
                return False
            sleep(interval)
    finally:
        if own:
            http.close()
