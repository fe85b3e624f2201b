"""The TTL rule and source wrapper, kept importable from here: they live in prenv.ttl, shared by ``prenv serve``,
``prenv sync`` and ``prenv gc --expired``."""

from prenv.ttl import (
    DEFAULT_TTL,
    KEEP_LABEL,
    TTL_LABEL_PREFIX,
    Expiry,
    Fingerprint,
    TtlPolicy,
    TtlSource,
    expiry_of,
    parse_duration,
    ttl_for,
)

__all__ = [
    "DEFAULT_TTL",
    "KEEP_LABEL",
    "TTL_LABEL_PREFIX",
    "Expiry",
    "Fingerprint",
    "TtlPolicy",
    "TtlSource",
    "expiry_of",
    "parse_duration",
    "ttl_for",
]
