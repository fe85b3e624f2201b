"""Listener lists, so that the reconciler and its wrappers can be built before the service that listens to them.

The composition root builds a :class:`Hook` first, hands it to the object that fires it (the reconciler's
``on_outcome``, the observed gateway's ``on_start``, the TTL source's ``on_expire``) and later to the service, which
subscribes. Nothing is patched after construction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, ParamSpec

logger = logging.getLogger(__name__)

P = ParamSpec("P")


class Hook(Generic[P]):
    """Call every subscribed listener, in subscription order; a failing listener is logged and the rest still run.

    Args:
        name: what the hook announces, for the log line of a failing listener.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: tuple[Callable[P, None], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Hook({self.name!r}, {len(self._listeners)} listener(s))"

    def subscribe(self, listener: Callable[P, None]) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:  # a tuple: subscribing meanwhile does not disturb this loop
            try:
                listener(*args, **kwargs)
            except Exception:  # a listener (feedback, metrics) must never stop an operation
                logger.exception("%s listener failed", self.name)
