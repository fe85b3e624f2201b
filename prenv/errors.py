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
    └── DatabaseError            PostgreSQL refused or was unreachable

Every error says whether retrying may help (``temporary``) and, for temporary ones, after how long.
Messages never contain secrets: callers build them from names and codes, never from ``str()`` of a
dependency's exception that might carry a DSN or token.
"""

from __future__ import annotations


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
    """PostgreSQL refused an operation or could not be reached."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary
