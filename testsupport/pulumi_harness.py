"""Run component code under Pulumi mocks and return what was registered, for asserting on inputs.

Mocks are set before the code under test runs; ``run`` waits for every registration and returns the recorded
resources, plus the resolved values (and secretness) of chosen outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    parent: str | None = None


@dataclass
class Registry(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        if args.typ.startswith("kubernetes:") and "metadata" in outputs:
            outputs["metadata"] = {"name": args.name, **(outputs.get("metadata") or {})}
        if args.typ == "pulumi-python:dynamic:Resource":
            outputs.update({"role": args.inputs.get("name"), "host": "db.test", "port": 5432, "password": "pw-123"})
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "random-pw-" + args.name
        return f"{args.name}_id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, []

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]


@dataclass
class Resolved:
    value: Any
    secret: bool


def run(
    build: Callable[[], dict[str, pulumi.Output[Any]] | None], registry: Registry | None = None
) -> tuple[Registry, dict[str, Resolved]]:
    """Register what ``build`` creates under fresh mocks; resolve the outputs it returns (name → Output).

    ``registry``: a Registry subclass answering invokes (``call``), when the code under test invokes a provider.
    """
    registry = registry if registry is not None else Registry()
    _ensure_event_loop()
    pulumi.runtime.set_mocks(registry, project="prenv", stack="pr-7", preview=False)
    resolved: dict[str, Resolved] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _go() -> Any:
        outs = build() or {}
        futures = []
        for key, out in outs.items():
            out = pulumi.Output.from_input(out)

            def keep(value: Any, key: str = key, out: pulumi.Output[Any] = out) -> None:
                resolved[key] = Resolved(value, False)

            futures.append(out.apply(keep))
            futures.append(_secretness(key, out, resolved))
        return pulumi.Output.all(*futures)

    _go()
    return registry, resolved


def _ensure_event_loop() -> None:
    """Pulumi's runtime asks ``asyncio.get_event_loop()``. Once anything in this thread has run ``asyncio.run`` (a
    test client, an async helper), that raises "There is no current event loop" instead of making one, so the
    outcome of a mocks test would depend on which tests ran before it in the same worker: give it a loop."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def _secretness(key: str, out: pulumi.Output[Any], resolved: dict[str, Resolved]) -> pulumi.Output[None]:
    async def check() -> None:
        secret = await out.is_secret()
        value = await out.future()
        resolved[key] = Resolved(value, bool(secret))

    return pulumi.Output.from_input(check())
