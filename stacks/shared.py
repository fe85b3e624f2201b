"""The shared stack, deployed once per cluster: the namespace holding the wildcard certificate, and default policy.

PR stacks in ``wildcard`` TLS mode read ``wildcardCert`` / ``wildcardKey`` from here through a StackReference, so the
certificate for ``*.<base domain>`` is managed in one place and copied into each PR namespace.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from prenv import naming, stackconfig, template

SHARED_NAMESPACE = naming.SYSTEM_NAMESPACE


def run(project_dir: Path) -> None:
    cfg = pulumi.Config(stackconfig.NAMESPACE)
    values = template.effective(template.read_template_file(project_dir), _own_values(cfg))
    t = stackconfig.load_template({k: v for k, v in values.items() if k not in ("wildcardCert", "wildcardKey")})
    labels = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
    ns = k8s.core.v1.Namespace("shared-ns", metadata=k8s.meta.v1.ObjectMetaArgs(name=SHARED_NAMESPACE, labels=labels))
    pulumi.export("namespace", ns.metadata.name)
    pulumi.export("baseDomain", t.base_domain)
    if t.tls.mode == "wildcard":
        cert = cfg.require("wildcardCert")
        key = cfg.require_secret("wildcardKey")
        k8s.core.v1.Secret(
            "wildcard-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="wildcard-tls", namespace=ns.metadata.name, labels=labels),
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert, "tls.key": key},
        )
        pulumi.export("wildcardCert", cert)
        pulumi.export("wildcardKey", key)
    elif t.tls.mode == "cert-manager":
        k8s.apiextensions.CustomResource(
            "wildcard-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="wildcard", namespace=ns.metadata.name, labels=labels),
            spec={
                "secretName": "wildcard-tls",
                "dnsNames": [f"*.{t.base_domain}"],
                "issuerRef": {"name": t.tls.issuer, "kind": t.tls.issuer_kind},
            },
        )


def _own_values(cfg: pulumi.Config) -> dict[str, object]:
    import pulumi.runtime.config

    raw: dict[str, object] = pulumi.runtime.config.CONFIG.get()
    del cfg
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{stackconfig.NAMESPACE}:")}
