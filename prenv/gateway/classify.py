"""What a failed pulumi command means for us: a short, secret-free summary and whether a retry may help.

The retry decision is data wherever we can make it so. Our own provider (the database branch) encodes it into its
failure (``prenv.errors.encode``), and pulumi prints that failure in its diagnostics; ``classify`` decodes it and
removes the marker from the summary. Message matching is kept only for outages that pulumi or the Kubernetes provider
report themselves (connection refused, a timeout, an unreachable cluster) and never applies to a line that carries
our marker, so a permanent database error whose message happens to say "timeout" stays permanent.

Pulumi prints a resource's error in the diagnostics on stdout; stderr only says that the update failed. Both are
read, and outages through the diagnostic lines only, so ordinary progress output ("timeoutSeconds 600") cannot make
a failure look temporary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulumi import automation as auto

from prenv.errors import StackOperationError, decode, strip_hints
from prenv.gateway.redact import redact

__all__ = ["Classified", "classify", "stack_error", "summarize"]

_ERROR_LINE = re.compile(r"^\s*(error:|.*\berror\b:|([\w.]*(Error|Exception)): )", re.IGNORECASE)
_NOISE = re.compile(r"Traceback \(most recent call last\)|^\s*error: update failed$|^\s*error: preview failed$")
_URN = re.compile(r'"?urn:pulumi:[^"\s]*::([^":\s]+)"?')
# Outages reported by pulumi itself or by the Kubernetes provider, in their own words.
_OUTAGE = re.compile(
    r"connection refused|timeout|timed out|unavailable|cannot connect|cluster is unreachable", re.IGNORECASE
)
_MAX_SUMMARY = 1500


@dataclass(frozen=True, slots=True)
class Classified:
    """A failed pulumi command, judged."""

    summary: str
    """The diagnostic lines, markers removed, secrets redacted, bounded in size."""
    temporary: bool
    """A retry may succeed: a provider said so, or pulumi reported an outage."""
    delay: float | None = None
    """The least wait before a retry, when a provider asked for one."""


def _text(e: auto.CommandError) -> str:
    """All pulumi printed: ``str()`` of a CommandError holds the exit code, stdout and stderr."""
    parts = [getattr(e, "stderr", "") or "", getattr(e, "stdout", "") or ""]
    return "\n".join(filter(None, parts)) or str(e)


def _lines(e: auto.CommandError) -> list[str]:
    """The diagnostic lines (or, when pulumi printed none, its last three lines), stripped."""
    text = _text(e)
    lines = [ln.strip() for ln in text.splitlines() if _ERROR_LINE.match(ln) and not _NOISE.search(ln)]
    return lines or [ln.strip() for ln in text.splitlines() if ln.strip()][-3:]


def summarize(e: auto.CommandError) -> str:
    """The diagnostic lines of a failed pulumi command, markers removed, secrets redacted, bounded in size."""
    out = "; ".join(dict.fromkeys(_URN.sub(r"\1", strip_hints(ln)) for ln in _lines(e)))
    return redact(out)[:_MAX_SUMMARY]


def classify(e: auto.CommandError) -> Classified:
    """Summary and retry decision of a failed pulumi command (see the module docstring for the rules)."""
    hint = decode(_text(e))
    unmarked = [ln for ln in _lines(e) if decode(ln) is None]  # a line with a marker was decided by its provider
    outage = _OUTAGE.search("\n".join(unmarked)) is not None
    temporary = outage or (hint is not None and hint.temporary)
    delay = hint.delay if hint is not None and hint.temporary else None
    return Classified(summarize(e), temporary, delay)


def stack_error(stack: str, what: str, e: auto.CommandError, *, temporary: bool | None = None) -> StackOperationError:
    """The StackOperationError for ``what`` (``"up"``, ``"destroy"``…) failing on ``stack``.

    ``temporary`` overrides the judgement where the step itself decides it (selecting a stack, clearing a crashed
    run's pending operations). An up and a destroy are judged alike; the reconciler never gives up on a destroy,
    it retries a permanent one at its backoff cap (prenv.reconcile).
    """
    c = classify(e)
    return StackOperationError(
        stack, f"{what} failed: {c.summary}", temporary=c.temporary if temporary is None else temporary, delay=c.delay
    )
