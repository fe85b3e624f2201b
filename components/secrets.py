"""PreviewSecrets: staging-level app secrets from AWS Secrets Manager, copied into one Kubernetes Secret.

Secrets are selected by name prefix (e.g. ``staging/shop/``); the part after the prefix becomes the env var name.
Values enter Pulumi only as secrets, so they are encrypted in state and masked in output. The configuration refuses
prefixes that name production (stackconfig.Secrets), because a preview runs code from an unreviewed branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.meta import metadata

SECRET_NAME = "prenv-app-secrets"  # noqa: S105 - a Secret object name
_ENV_SAFE = re.compile(r"[^A-Za-z0-9_]")


def env_name(secret_name: str, prefix: str) -> str:
    """``staging/shop/stripe-key`` under ``staging/shop/`` → ``STRIPE_KEY``."""
    return _ENV_SAFE.sub("_", secret_name[len(prefix) :]).strip("_").upper()


def fetch(prefix: str, *, client: Any) -> dict[str, str]:
    """Every secret whose name starts with ``prefix``, as {ENV_NAME: value}; paginated, string values only."""
    out: dict[str, str] = {}
    paginator = client.get_paginator("list_secrets")
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        for entry in page.get("SecretList", []):
            name = entry["Name"]
            if not name.startswith(prefix):
                continue
            value = client.get_secret_value(SecretId=entry["ARN"]).get("SecretString")
            if value is not None and env_name(name, prefix):
                out[env_name(name, prefix)] = value
    return out


@dataclass(frozen=True)
class PreviewSecretsArgs:
    namespace: pulumi.Input[str]
    labels: dict[str, str]
    values: dict[str, str]  # already fetched; each becomes a Pulumi secret


class PreviewSecrets(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:secrets:PreviewSecrets", name, None, opts)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=metadata(SECRET_NAME, args.namespace, args.labels),
            string_data={k: pulumi.Output.secret(v) for k, v in sorted(args.values.items())},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = secret.metadata.name
        self.register_outputs({"name": self.name})
