"""The shared stack, deployed once per cluster: the namespace holding the wildcard certificate, the registry
credentials PR namespaces copy (``prenv:image.pullSecret``), and default policy.

It owns the ``prenv-system`` namespace and exports it as ``namespace``; the driver stack (stacks/incluster.py) puts
its objects there through its ``prenv:sharedStack`` reference. Destroying this stack deletes its own objects and
*keeps* the namespace, so the driver's objects in it survive; ``kubectl delete namespace prenv-system`` after both
stacks are destroyed removes it.

PR stacks in ``wildcard`` TLS mode read ``wildcardCert`` / ``wildcardKey`` from here through a StackReference, so the
certificate for ``*.<base domain>`` is managed in one place and copied into each PR namespace.

The certificate and key come from this stack's config, either as PEM text (``prenv:wildcardCert``, and
``prenv:wildcardKey`` set with ``--secret``) or as PEM files (``prenv:wildcardCertFile``, ``prenv:wildcardKeyFile``):
the embedded cluster's CA signs one (``prenv cluster wildcard --base-domain …`` prints the two paths), and a
file keeps the key out of the stack's config file. The key is a secret in the state either way.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from prenv import naming, stackconfig, template
from prenv.errors import ConfigError

SHARED_NAMESPACE = naming.SYSTEM_NAMESPACE
# This stack's own keys, not part of the template every PR stack validates.
OWN_KEYS = ("wildcardCert", "wildcardKey", "wildcardCertFile", "wildcardKeyFile", "registryAuth", "registryAuthFile")


def run(project_dir: Path) -> None:
    cfg = pulumi.Config(stackconfig.NAMESPACE)
    values = template.effective(template.read_template_file(project_dir), _own_values(cfg))
    t = stackconfig.load_template({k: v for k, v in values.items() if k not in OWN_KEYS})
    labels = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
    # This stack owns prenv-system (the driver stack takes it through prenv:sharedStack) and keeps it when destroyed:
    # deleting it would delete the driver's objects inside. An up adopts a namespace left by an earlier destroy.
    ns = k8s.core.v1.Namespace(
        "shared-ns",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SHARED_NAMESPACE, labels=labels),
        opts=pulumi.ResourceOptions(retain_on_delete=True),
    )
    pulumi.export("namespace", ns.metadata.name)
    pulumi.export("baseDomain", t.base_domain)
    if t.tls.mode == "wildcard":
        cert, key = wildcard_pair(cfg)
        k8s.core.v1.Secret(
            "wildcard-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="wildcard-tls", namespace=ns.metadata.name, labels=labels),
            type="kubernetes.io/tls",
            string_data={"tls.crt": cert, "tls.key": key},
        )
        pulumi.export("wildcardCert", cert)
        pulumi.export("wildcardKey", key)
    if t.image.pull_secret:
        auth = registry_auth(cfg)
        k8s.core.v1.Secret(
            "registry-auth",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="registry-auth", namespace=ns.metadata.name, labels=labels),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": auth},
        )
        pulumi.export("pullSecretConfig", auth)
    if t.tls.mode == "cert-manager":
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


def wildcard_pair(cfg: pulumi.Config) -> tuple[str, pulumi.Output[str]]:
    """The certificate (PEM) and the key (PEM, as a secret) from PEM values or from PEM files."""
    cert_file, key_file = cfg.get("wildcardCertFile"), cfg.get("wildcardKeyFile")
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise ConfigError("prenv:wildcardCertFile", "set both wildcardCertFile and wildcardKeyFile, or neither")
        return _read_pem("prenv:wildcardCertFile", cert_file), pulumi.Output.secret(
            _read_pem("prenv:wildcardKeyFile", key_file)
        )
    if cfg.get("wildcardCert") is None:
        raise ConfigError(
            "prenv:wildcardCert",
            "tls.mode is wildcard: set prenv:wildcardCert and prenv:wildcardKey (--secret), "
            "or prenv:wildcardCertFile and prenv:wildcardKeyFile",
        )
    return cfg.require("wildcardCert"), cfg.require_secret("wildcardKey")


def registry_auth(cfg: pulumi.Config) -> pulumi.Output[str]:
    """The registry credentials PR namespaces get (a docker ``config.json``: ``{"auths": {...}}``), as a secret.

    From ``prenv:registryAuth`` (set with ``--secret``) or the file ``prenv:registryAuthFile``.
    """
    path = cfg.get("registryAuthFile")
    if path:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as e:
            raise ConfigError("prenv:registryAuthFile", f"cannot read {path}: {e.strerror}") from e
        _check_docker_config("prenv:registryAuthFile", text)
        return pulumi.Output.secret(text)
    if cfg.get("registryAuth") is None:
        raise ConfigError(
            "prenv:registryAuth",
            "image.pullSecret is set: set prenv:registryAuth (--secret, a docker config.json) "
            "or prenv:registryAuthFile",
        )
    return cfg.require_secret("registryAuth").apply(lambda text: _check_docker_config("prenv:registryAuth", text))


def _check_docker_config(key: str, text: str) -> str:
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths"), dict):
        raise ConfigError(key, 'is not a docker config.json (a JSON object with "auths")')  # never echo the value
    return text


def _read_pem(key: str, path: str) -> str:
    try:
        text = Path(path).expanduser().read_text()
    except OSError as e:
        raise ConfigError(key, f"cannot read {path}: {e.strerror}") from e
    if "-----BEGIN " not in text:
        raise ConfigError(key, f"{path} is not a PEM file")
    return text
