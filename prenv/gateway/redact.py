"""Redaction of pulumi's output before it reaches a log line or an error message.

Pulumi prints what resources report, and a provider may echo a connection string or a token in a failure. Our own
messages never contain secrets (prenv.errors); this is the second line of defence for text we did not write.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact"]

REDACTED = "[redacted]"

_SECRETISH = re.compile(r"(postgres(ql)?://[^\s'\"]+|password[=:]\s*\S+|token[=:]\s*\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with connection URLs and ``password=…`` / ``token: …`` values replaced by ``[redacted]``."""
    return _SECRETISH.sub(REDACTED, text)
