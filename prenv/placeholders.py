"""The placeholders through which PR values reach a bring-your-own app: ``{pr}``, ``{sha}``, ``{host}``, ….

A Helm chart's values, a values file, a manifest file and the objects a Kustomize directory renders may contain
``{name}`` where ``name`` is one of ``NAMES``. They are filled only from validated values (the PR number, the sha,
the image tag, names derived from them); branch names, titles and authors have no placeholder, so they never reach
a rendered object. An unknown name is a ConfigError naming it and the key where it appeared, because a typo
(``{sah}``) would otherwise ship the literal text.

Not placeholders, so templates and scripts keep working: ``${NAME}`` (shell and envsubst), ``{{ … }}`` (Go and
Jinja templates), ``{.status}`` (JSONPath) and anything that is not a plain identifier in single braces.

Imports neither pulumi nor the driver: the driver checks inline values at start-up with the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prenv.errors import ConfigError

NAMES = (
    "pr",
    "sha",
    "imageTag",
    "imageRepository",
    "image",
    "host",
    "url",
    "namespace",
    "databaseSecret",
    "pullSecret",
)

# `{name}`, not `${name}` and not part of `{{name}}`.
_PLACEHOLDER = re.compile(r"(?<![${])\{([A-Za-z][A-Za-z0-9_]*)\}(?!\})")


def found(text: str) -> list[str]:
    """The placeholder names in ``text``, in order (known or not)."""
    return _PLACEHOLDER.findall(text)


def check(value: Any, key: str, known: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError when any string in ``value`` (nested dicts and lists included) names an unknown placeholder.

    Args:
        value: a string, or a YAML-like tree of dicts and lists.
        key: the key the value came from, as the user wrote it (``prenv:app.values``, ``prenv:app.files[0]``).
        known: the placeholders available to this stack; default: every documented name.
    """
    names = tuple(known) if known is not None else NAMES
    for path, text in _strings(value, ""):
        for name in found(text):
            if name not in names:
                where = f"{key}{path}" if path else key
                if name in NAMES:
                    raise ConfigError(where, f"placeholder {{{name}}} is not available in this stack")
                listed = ", ".join(f"{{{n}}}" for n in NAMES)
                raise ConfigError(where, f"unknown placeholder {{{name}}} (placeholders: {listed})")


def fill(value: Any, values: Mapping[str, str], key: str) -> Any:
    """``value`` with every placeholder replaced; a copy, the input is left alone. Raises like ``check``."""
    check(value, key, values)
    return _sub(value, values)


def _sub(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, Mapping):
        return {k: _sub(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, values) for v in value]
    return value


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []
