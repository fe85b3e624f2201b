"""Which secrets manager a backend's stacks get, and refusing a production backend without one.

Pulumi encrypts stack secrets (the database password, the admin DSN's parts) with a passphrase unless the stack uses
a cloud KMS or lives in Pulumi Cloud. prenv ships a *public* development passphrase so that a checkout works without
setup; stacks encrypted with it are not protected. The rule, decided once here for every ``prenv sync``, ``serve``,
``up`` and ``destroy`` (the driver's composition root calls :func:`secrets_env`):

=====================================  ======================================================================
backend                                without ``PULUMI_CONFIG_PASSPHRASE(_FILE)`` or ``state.secrets_provider``
=====================================  ======================================================================
``file://`` (any path)                 the development passphrase, with one warning line
``https://`` (Pulumi Cloud)            the service's own secrets manager: nothing to set
``s3://``, ``gs://``, ``azblob://``…   refused: ConfigError naming what to set
=====================================  ======================================================================

Any ``file://`` backend, not only the project's ``.state``: a file backend lives on one machine's disk, readable by
whoever can read the checkout that holds the public passphrase, so the passphrase protects nothing there either way;
tests and the demo use file backends under temporary directories. A shared (object-store) backend is where a real
passphrase matters, and there the development passphrase is refused even when it is set explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prenv.errors import ConfigError

__all__ = ["KMS_SCHEMES", "secrets_env"]

logger = logging.getLogger(__name__)

KMS_SCHEMES = ("awskms://", "gcpkms://", "azurekeyvault://", "hashivault://")
"""The cloud secrets providers pulumi accepts as ``--secrets-provider``."""

_PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"  # noqa: S105 - the variable name, no secret
_PASSPHRASE_FILE = "PULUMI_CONFIG_PASSPHRASE_FILE"  # noqa: S105 - the variable name
_WHAT_TO_SET = (
    f"set {_PASSPHRASE} or {_PASSPHRASE_FILE} (a passphrase of your own), or state.secrets_provider to a cloud KMS "
    f"({', '.join(s + '…' for s in KMS_SCHEMES)})"
)


def secrets_env(
    backend_url: str, env: Mapping[str, str], *, secrets_provider: str | None, dev_passphrase: str
) -> dict[str, str]:
    """The variables to add to ``env`` so that pulumi can encrypt ``backend_url``'s secrets (see the module rule).

    Args:
        backend_url: the state backend.
        env: the environment pulumi will run with (a passphrase set there counts, even an empty one).
        secrets_provider: ``state.secrets_provider``, a KMS URL or None.
        dev_passphrase: the public development passphrase (prenv.toolchain.env.DEV_PASSPHRASE).

    Raises:
        ConfigError: a shared backend without a passphrase or KMS, or with the public development passphrase; a
            secrets provider that is not a cloud KMS.
    """
    if secrets_provider is not None and not secrets_provider.startswith(KMS_SCHEMES):
        raise ConfigError("state.secrets_provider", f"must be a cloud KMS URL ({', '.join(KMS_SCHEMES)})")
    local = backend_url.startswith("file://")
    if _PASSPHRASE in env or _PASSPHRASE_FILE in env:
        if not local and secrets_provider is None and env.get(_PASSPHRASE) == dev_passphrase:
            raise ConfigError(
                _PASSPHRASE, f"is prenv's public development passphrase, refused for a shared backend: {_WHAT_TO_SET}"
            )
        return {}
    if secrets_provider is not None or backend_url.startswith("https://"):
        return {}
    if local:
        logger.warning("%s unset: using prenv's public development passphrase (file backend only)", _PASSPHRASE)
        return {_PASSPHRASE: dev_passphrase}
    scheme = backend_url.split("://", 1)[0] if "://" in backend_url else "this"
    raise ConfigError(_PASSPHRASE, f"a {scheme}:// backend needs its own secrets: {_WHAT_TO_SET}")
