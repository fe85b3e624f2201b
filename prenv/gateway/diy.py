"""The stack gateway for DIY backends (``file://``, ``s3://``): checkpoints read directly, ``pulumi up`` run bare.

A DIY backend is plain files in a known layout (prenv.gateway.backend), so this gateway reads stack outputs, locks,
pending operations and history itself: listing 200 stacks starts no process. It runs ``pulumi up`` and
``pulumi destroy`` through the PulumiCommand as ``Stack.up`` / ``Stack.destroy`` would, but without the processes
the Automation API starts afterwards to build its result (``stack output`` twice and ``stack history`` after an up,
``stack history`` after a destroy): the outputs are in the checkpoint. A new PR costs ``stack init``,
``config set-all``, ``up``; a push ``stack select``, ``config set-all``, ``up``; a teardown ``stack select``,
``destroy``, ``stack rm``.

Before every operation it clears what a crashed run left behind: a stale lock (prenv.gateway.locks), then pending
operations (with a refresh that clears pending creates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from pulumi import automation as auto

from prenv.errors import StackOperationError
from prenv.gateway.backend import BlobStore, DiyBackend, FileStore
from prenv.gateway.classify import stack_error
from prenv.gateway.locks import clear_stale_locks
from prenv.gateway.workspace import Deployed, OutputLog, PulumiGateway
from prenv.model import DesiredEnvironment, Drift, StackState

__all__ = ["DiyGateway"]

logger = logging.getLogger(__name__)


class DiyGateway(PulumiGateway):
    """A stack gateway over a DIY backend's blob store (see the module docstring).

    Args:
        store: the backend's files (prenv.gateway.backend.store_for); the rest as for PulumiGateway.
        stale_lock_seconds: a lock held longer than this by a live or remote owner is reported (never removed for
            its age: prenv.gateway.locks).
    """

    def __init__(
        self,
        project_dir: Path,
        backend_url: str,
        env: Mapping[str, str],
        *,
        store: BlobStore,
        pulumi_root: Path | None = None,
        stale_lock_seconds: float = 900.0,
        extra_config: Callable[[DesiredEnvironment], dict[str, str]] | None = None,
        secrets_provider: str | None = None,
        session_dir: Path | None = None,
    ) -> None:
        super().__init__(
            project_dir,
            backend_url,
            env,
            pulumi_root=pulumi_root,
            extra_config=extra_config,
            secrets_provider=secrets_provider,
            session_dir=session_dir,
        )
        if isinstance(store, FileStore):
            store.root.mkdir(parents=True, exist_ok=True)  # pulumi refuses a file:// backend that does not exist
        self.backend = DiyBackend(store, "prenv")
        self.stale_lock_seconds = stale_lock_seconds

    def list_stacks(self) -> list[StackState]:
        """Every ``pr-<n>`` and ``br-<slug>-<digits>`` stack, read from the checkpoints: no pulumi process."""
        return self.backend.stacks()

    def _stack_names(self) -> list[str]:
        return self.backend.stack_names()

    def _exists(self, name: str) -> bool:
        return name in self.backend.stack_names()

    def _recover(self, stack: auto.Stack) -> None:
        name = stack.name
        clear_stale_locks(self.backend, name, warn_after_seconds=self.stale_lock_seconds)
        if self.backend.pending_operations(name):
            logger.warning("%s: clearing pending operations left by an interrupted run", name)
            try:
                stack.refresh(clear_pending_creates=True, color="never", on_output=OutputLog(0).output)
            except auto.CommandError as e:
                raise stack_error(name, "refresh", e, temporary=True) from None

    def _repair(self, name: str) -> None:
        for key in self.backend.remove_broken_sidecars(name):
            logger.warning("%s: removed %s, left empty or cut short by a killed pulumi (it is optional)", name, key)

    def _remember_failure(self, name: str, kind: str, error: StackOperationError | None) -> None:
        try:
            if error is None:
                self.backend.clear_failure(name)
            else:
                self.backend.record_failure(name, kind, str(error))
        except Exception as e:  # the record only adds to the operation's result; it never replaces it
            logger.warning("%s: could not keep the failure record: %s", name, type(e).__name__)

    def _remember_drift(self, name: str, drift: Drift | None) -> None:
        try:
            if drift is None:
                self.backend.clear_drift(name)
            else:
                self.backend.record_drift(name, drift.changes, drift.healed, drift.at)
        except Exception as e:  # the record only adds to the check's result; it never replaces it
            logger.warning("%s: could not keep the drift record: %s", name, type(e).__name__)

    def drift_record(self, name: str) -> dict[str, object] | None:
        """The stack's last drift check as recorded (for ``prenv list``), or None."""
        return self.backend.drift(name)

    def _deploy(self, stack: auto.Stack, log: OutputLog, *, refresh: bool = False) -> Deployed:
        self._run(stack, ["up", "--yes", "--skip-preview", *(["--refresh"] if refresh else [])], log)
        after = self.backend.state(stack.name, with_result=False)
        return (after.sha, after.config_hash, after.url) if after else (None, None, None)

    def _destroy(self, stack: auto.Stack, log: OutputLog) -> None:
        self._run(stack, ["destroy", "--yes", "--skip-preview"], log)

    def _run(self, stack: auto.Stack, args: list[str], log: OutputLog) -> None:
        """``pulumi <args>`` on the stack, with the arguments and environment ``Stack.up`` / ``Stack.destroy`` use."""
        env = {"PULUMI_DEBUG_COMMANDS": "true", **self.env}
        argv = [*args, "--color", "never", "--suppress-progress", "--exec-kind", "auto.local", "--stack", stack.name]
        self._cmd.run(argv, str(self.project_dir), env, on_output=log.output)
