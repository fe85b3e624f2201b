"""The stack gateway for Pulumi Cloud and other ``https://`` backends: everything through the Automation API.

Such a backend is a service, not files prenv can read, so listing asks pulumi (``stack ls``, then ``stack output``
per PR stack) and an up or destroy uses ``Stack.up`` / ``Stack.destroy``, whose results carry the outputs. Locks and
interrupted updates are the service's business: it rejects a second update itself (ConcurrentUpdateError, turned into
StackLocked) and offers ``pulumi cancel`` to an operator, so there is nothing to clear before an operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import automation as auto

from prenv import naming
from prenv.errors import StackOperationError
from prenv.gateway.classify import stack_error
from prenv.gateway.workspace import Deployed, OutputLog, PulumiGateway
from prenv.model import Drift, StackState

__all__ = ["CloudGateway"]


class CloudGateway(PulumiGateway):
    """A stack gateway that leaves all state handling to the backend service (see the module docstring)."""

    def list_stacks(self) -> list[StackState]:
        """Every ``pr-<n>`` and ``br-<slug>-<digits>`` stack; one ``stack output`` process per stack."""
        states = []
        ws = self._workspace()
        for summary in ws.list_stacks():
            pr = naming.pr_of_stack(summary.name)
            if pr is None:
                continue
            outputs = ws.stack_outputs(summary.name)
            states.append(
                StackState(
                    pr=pr,
                    stack=summary.name,
                    sha=_out(outputs, "sha"),
                    config_hash=_out(outputs, "configHash"),
                    url=_out(outputs, "url"),
                    result="in-progress" if summary.update_in_progress else "succeeded",
                )
            )
        return states

    def _stack_names(self) -> list[str]:
        try:
            summaries = self._workspace().list_stacks()
        except auto.CommandError as e:
            raise stack_error("prenv", "stack ls", e, temporary=True) from None
        return [summary.name.rsplit("/", 1)[-1] for summary in summaries]

    def _exists(self, name: str) -> None:
        return None  # only pulumi knows: create_or_select asks it

    def _recover(self, stack: auto.Stack) -> None:
        return None

    def _deploy(self, stack: auto.Stack, log: OutputLog, *, refresh: bool = False) -> Deployed:
        outputs = stack.up(on_output=log.output, color="never", suppress_progress=True, refresh=refresh).outputs
        return _out(outputs, "sha"), _out(outputs, "configHash"), _out(outputs, "url")

    def _destroy(self, stack: auto.Stack, log: OutputLog) -> None:
        stack.destroy(on_output=log.output, color="never", suppress_progress=True)

    def _repair(self, name: str) -> None:
        """Nothing to repair: Pulumi Cloud keeps the state, no file of it is ours to read."""

    def _remember_drift(self, name: str, drift: Drift | None) -> None:
        """Nothing is kept: no file of prenv's lives in Pulumi Cloud; the service's metric and PR comment say it."""

    def _remember_failure(self, name: str, kind: str, error: StackOperationError | None) -> None:
        """Nothing is kept: Pulumi Cloud records the failed update itself (its console shows why), and prenv has
        no file of its own there; ``prenv list`` says only which run failed."""


def _out(outputs: Mapping[str, Any], key: str) -> str | None:
    """A plain (non-secret) output as text, or None."""
    item = outputs.get(key)
    value = getattr(item, "value", None)
    if getattr(item, "secret", False):
        return None
    return str(value) if value is not None else None
