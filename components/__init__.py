"""ComponentResources of one preview environment; type tokens are ``prenv:<module>:<Type>``.

The names below are imported on first use (PEP 562), not when the package is. The database branch's dynamic provider
is pickled by reference (``components.database.PostgresBranchProvider``), so its process imports this package to
unpickle it, once per up and once per destroy; eager imports here made it import every component (pulumi_kubernetes,
the pydantic stack config…) that it never uses. The effect is measured in docs/benchmarks.md
(``python -m bench profile --before``).
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from components.app import PreviewApp, PreviewAppArgs
    from components.database import PreviewDatabase, PreviewDatabaseArgs
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs
    from components.ingress import PreviewIngress, PreviewIngressArgs
    from components.namespace import PreviewNamespace, PreviewNamespaceArgs
    from components.secrets import PreviewSecrets, PreviewSecretsArgs

_MODULE_OF = {
    "PreviewApp": "components.app",
    "PreviewAppArgs": "components.app",
    "PreviewDatabase": "components.database",
    "PreviewDatabaseArgs": "components.database",
    "PreviewEnvironment": "components.environment",
    "PreviewEnvironmentArgs": "components.environment",
    "PreviewIngress": "components.ingress",
    "PreviewIngressArgs": "components.ingress",
    "PreviewNamespace": "components.namespace",
    "PreviewNamespaceArgs": "components.namespace",
    "PreviewSecrets": "components.secrets",
    "PreviewSecretsArgs": "components.secrets",
}

__all__ = [
    "PreviewApp",
    "PreviewAppArgs",
    "PreviewDatabase",
    "PreviewDatabaseArgs",
    "PreviewEnvironment",
    "PreviewEnvironmentArgs",
    "PreviewIngress",
    "PreviewIngressArgs",
    "PreviewNamespace",
    "PreviewNamespaceArgs",
    "PreviewSecrets",
    "PreviewSecretsArgs",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
