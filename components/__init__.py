"""ComponentResources of one preview environment; type tokens are ``prenv:<module>:<Type>``."""

from components.app import PreviewApp, PreviewAppArgs
from components.database import PreviewDatabase, PreviewDatabaseArgs
from components.environment import PreviewEnvironment, PreviewEnvironmentArgs
from components.ingress import PreviewIngress, PreviewIngressArgs
from components.namespace import PreviewNamespace, PreviewNamespaceArgs
from components.secrets import PreviewSecrets, PreviewSecretsArgs

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
