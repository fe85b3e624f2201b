"""One translation of pydantic's ValidationError into ConfigError, for every file prenv validates.

prenv.yaml (prenv.settings) and the ``prenv:`` keys of a stack config (prenv.stackconfig) are both validated with
pydantic; a user must see the key as they wrote it (``serve.ttl.default_hours``, ``prenv:app.replicas``) and a short
reason, never pydantic's multi-line report. Only the first error is reported: fixing one key at a time is how
people edit config files, and a later error is often a consequence of the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from prenv.errors import ConfigError


def config_error(
    e: ValidationError, *, prefix: str = "", fallback: str = "", aliases: Mapping[str, str] | None = None
) -> ConfigError:
    """The ConfigError for the first error of ``e``.

    Args:
        e: what pydantic raised.
        prefix: written before the key (``"prenv:"``); the first part follows it without a dot.
        fallback: the key when the error is about the whole document (an empty location), e.g. the file's path.
        aliases: field name → the name written in the file, where they differ (``image_tag`` → ``imageTag``).

    Returns:
        ConfigError whose ``key`` is the dotted key as written (``serve.port``, ``filters.labels[0]``).
    """
    err = e.errors()[0]
    key = key_of(tuple(err["loc"]), prefix, aliases or {})
    return ConfigError(key if key != prefix else (fallback or prefix), message_of(err))


def key_of(loc: tuple[int | str, ...], prefix: str = "", aliases: Mapping[str, str] | None = None) -> str:
    """``("serve", "ttl", "default_hours")`` → ``serve.ttl.default_hours``; list indexes as ``[i]``."""
    names = aliases or {}
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out != prefix else "") + names.get(part, part)
    return out


def message_of(err: ErrorDetails | Mapping[str, Any]) -> str:
    """A short reason; the input is shown only for a pattern mismatch (never for secrets, which have no pattern)."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} does not have the expected form"
    return str(err["msg"]).removeprefix("Value error, ")
