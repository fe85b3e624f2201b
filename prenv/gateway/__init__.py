"""The stack gateway: the only door between the reconciler and Pulumi stacks.

``StackGateway`` (prenv.gateway.base) is the interface the reconciler uses; ``gateway_for`` builds the real one for
a backend URL. Inside, one module per job:

    workspace.py   PulumiGateway: up / destroy-then-remove / deploy_shared over the project's workspace
    diy.py         DiyGateway: file:// and s3:// backends, checkpoints read directly, fewest pulumi processes
    cloud.py       CloudGateway: Pulumi Cloud and https:// backends, through the Automation API
    backend.py     reading a DIY backend's checkpoints, locks and history
    locks.py       when a crashed run's lock may be removed
    secrets.py     which secrets manager a backend gets; no public passphrase on a shared backend
    sessions.py    every pulumi process in a session of its own, ended with its operation or after a crash
    classify.py    a failed pulumi command → summary and retry decision
    redact.py      secrets out of pulumi's output
    fake.py        FakeGateway, in memory, for reconciler tests
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prenv.gateway.base import StackGateway

if typing.TYPE_CHECKING:
    from prenv.gateway.workspace import PulumiGateway
    from prenv.model import DesiredEnvironment

__all__ = ["StackGateway", "gateway_for"]


def gateway_for(
    project_dir: Path,
    backend_url: str,
    env: Mapping[str, str],
    *,
    pulumi_root: Path | None = None,
    stale_lock_seconds: float = 900.0,
    s3_client: Any = None,
    extra_config: Callable[[DesiredEnvironment], dict[str, str]] | None = None,
    secrets_provider: str | None = None,
    session_dir: Path | None = None,
) -> PulumiGateway:
    """The stack gateway for ``backend_url``: DiyGateway for ``file://`` and ``s3://``, CloudGateway for ``https://``.

    Args:
        project_dir: holds Pulumi.yaml, Pulumi.preview.yaml and ``__main__.py``.
        backend_url: the state backend; another scheme raises ConfigError.
        env: the environment of every pulumi process.
        pulumi_root: where the pulumi CLI is installed (None: on PATH).
        stale_lock_seconds: (DIY) a lock held longer than this by a live or remote owner is reported, never removed
            for its age (prenv.gateway.locks).
        s3_client: (s3://) a boto3 S3 client to read the backend with; built from the URL when None.
        extra_config: more stack config for a PR, written with its PR values.
        secrets_provider: a cloud KMS URL new stacks encrypt their secrets with (None: the passphrase, or Pulumi
            Cloud's own); see prenv.gateway.secrets.
        session_dir: where running pulumi sessions are recorded for crash recovery (prenv.gateway.sessions).
    """
    # Imported here: the reconciler imports this package for StackGateway and needs no pulumi to plan.
    from prenv.gateway.backend import store_for
    from prenv.gateway.cloud import CloudGateway
    from prenv.gateway.diy import DiyGateway

    store = store_for(backend_url, s3_client=s3_client)
    if store is None:
        return CloudGateway(
            project_dir,
            backend_url,
            env,
            pulumi_root=pulumi_root,
            extra_config=extra_config,
            secrets_provider=secrets_provider,
            session_dir=session_dir,
        )
    return DiyGateway(
        project_dir,
        backend_url,
        env,
        store=store,
        pulumi_root=pulumi_root,
        stale_lock_seconds=stale_lock_seconds,
        extra_config=extra_config,
        secrets_provider=secrets_provider,
        session_dir=session_dir,
    )
