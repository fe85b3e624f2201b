"""The stack gateway: the only door between the reconciler and Pulumi stacks."""

from prenv.gateway.base import StackGateway

__all__ = ["StackGateway"]
