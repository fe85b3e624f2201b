"""The one interface the reconciler needs from a stack backend: list, up, destroy-then-remove.

The real implementations run the project's Pulumi program (prenv.gateway.diy for file:// and s3:// backends,
prenv.gateway.cloud for Pulumi Cloud; ``prenv.gateway.gateway_for`` picks one); the fake keeps stacks in memory for
reconciler tests. Implementations translate their errors into prenv.errors.StackOperationError subclasses, with
``temporary`` set when a retry may succeed (lock held, API unreachable).
"""

from __future__ import annotations

from typing import Protocol

from prenv.model import DesiredEnvironment, Drift, StackState


class StackGateway(Protocol):
    def list_stacks(self) -> list[StackState]:
        """Every ``pr-<n>`` (and branch ``br-<slug>-<digits>``) stack with the sha and config hash it last deployed.
        Must not run a pulumi operation per stack: an idle cycle over hundreds of PRs should start no process."""
        ...

    def up(self, desired: DesiredEnvironment) -> StackState:
        """Create the PR's stack if needed (``naming.stack_name(number, slug)``; a branch environment's existing stack
        under its pre-slug ``pr-<n>`` name is kept), set its PR values, and deploy it. Returns the new state."""
        ...

    def destroy(self, pr: int) -> None:
        """Destroy every resource of the PR's stack (found by number, whatever its form), then remove the stack.
        The stack is removed only when the destroy succeeded; a missing stack is not an error (the work is already
        done)."""
        ...

    def check_drift(self, desired: DesiredEnvironment, *, heal: bool = False) -> Drift | None:
        """How far the cluster moved from the environment's last up (``desired`` is what that up deployed); with
        ``heal``, put it back. None when the environment has no stack. Runs pulumi: call it at a low rate."""
        ...
