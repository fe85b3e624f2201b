"""Our own error hierarchy: dependencies' exceptions are translated into these at the boundary.

    PrenvError
    ├── ConfigError              bad configuration; names the offending key (permanent)
    ├── ToolError                a toolchain binary is missing or has the wrong version (setup problem)
    ├── ClusterError             the embedded cluster could not be started, stopped or reached
    ├── SourceError              a PR source failed (permanent unless SourceUnavailable)
    │   └── SourceUnavailable    temporary: outage, timeout, rate limit; the cycle destroys nothing
    ├── StackOperationError      a pulumi operation failed
    │   ├── StackLocked          another operation holds the stack (temporary)
    │   └── StackNotFound
    └── DatabaseError            PostgreSQL refused (permanent) or was unreachable (temporary)

Every error says whether retrying may help (``temporary``) and, for temporary ones, after how long.
Messages never contain secrets: callers build them from names and codes, never from ``str()`` of a
dependency's exception that might carry a DSN or token.

The retry decision crosses the pulumi process boundary as data, not as message wording: the database provider
runs inside pulumi and can only hand back text, so it raises ``Exception(encode(err))``, which appends a marker
``[prenv:temporary delay=5]`` (or ``[prenv:permanent]``) to the safe message; the gateway reads it back from pulumi's
diagnostics with ``decode`` and removes it from what users see with ``strip_hints``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class PrenvError(Exception):
    """Base of every error prenv raises on purpose."""

    temporary: bool = False

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class ConfigError(PrenvError):
    """Configuration is invalid; the message names the key and the expected form."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ToolError(PrenvError):
    """A toolchain binary is missing or at the wrong version; the message says how to fix it."""


class ClusterError(PrenvError):
    """The embedded cluster could not be started, stopped or reached."""


class SourceError(PrenvError):
    """A PR source failed permanently (bad credentials, unknown repository...)."""


class SourceUnavailable(SourceError):
    """A PR source failed temporarily; no desired state can be derived this cycle."""

    temporary = True


class StackOperationError(PrenvError):
    """A pulumi operation on a stack failed."""

    def __init__(self, stack: str, message: str, *, temporary: bool = False, delay: float | None = None):
        super().__init__(f"{stack}: {message}", delay=delay)
        self.stack = stack
        self.temporary = temporary


class StackLocked(StackOperationError):
    """Another operation holds the stack's lock."""

    def __init__(self, stack: str, message: str = "stack is locked by another operation") -> None:
        super().__init__(stack, message, temporary=True)


class StackNotFound(StackOperationError):
    """The stack does not exist in the backend."""

    def __init__(self, stack: str) -> None:
        super().__init__(stack, "stack not found")


class DatabaseError(PrenvError):
    """PostgreSQL refused an operation (permanent) or could not be reached (temporary)."""

    def __init__(self, message: str, *, temporary: bool = False, delay: float | None = None) -> None:
        super().__init__(message, delay=delay)
        self.temporary = temporary


# -- the retry decision as text, for a process that can only pass text on -------------------------------------------

_HINT = re.compile(r"[ \t]*\[prenv:(?P<kind>temporary|permanent)(?: delay=(?P<delay>\d{1,6}(?:\.\d{1,3})?))?\]")


@dataclass(frozen=True, slots=True)
class RetryHint:
    """The retry decision of an error raised in another process: what ``PrenvError.temporary`` and ``delay`` were."""

    temporary: bool
    delay: float | None = None


def encode(err: PrenvError) -> str:
    """``err``'s message on one line, followed by its retry decision as a marker that ``decode`` reads back.

    The message is ``str(err)``, which our errors keep free of secrets; the marker adds nothing but the decision.
    """
    message = " ".join(str(err).split())  # one line: pulumi prints a provider's failure as one diagnostic line
    if not err.temporary:
        return f"{message} [prenv:permanent]"
    delay = ""
    if err.delay is not None and err.delay > 0:
        delay = " delay=" + f"{min(err.delay, 999_999):.3f}".rstrip("0").rstrip(".")
    return f"{message} [prenv:temporary{delay}]"


def decode(text: str) -> RetryHint | None:
    """The retry decision carried by the markers in ``text``, or None when it carries none.

    Several markers (several resources failed in one run) are temporary if any of them is, since a retry may cure
    that one and the next run then reports the permanent ones alone; the delay is the longest one asked for.
    """
    hints = list(_HINT.finditer(text))
    if not hints:
        return None
    temporary = [m for m in hints if m["kind"] == "temporary"]
    delays = [float(m["delay"]) for m in temporary if m["delay"]]
    return RetryHint(temporary=bool(temporary), delay=max(delays) if delays else None)


def strip_hints(text: str) -> str:
    """``text`` without the markers ``encode`` added: they are for the gateway, not for people."""
    return _HINT.sub("", text)
