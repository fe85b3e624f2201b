"""The Pulumi mocks harness works whatever ran before it in the same worker (a regression seen in CI: 19 mocks tests
failed with "There is no current event loop" after another test had run ``asyncio.run`` in the main thread)."""

from __future__ import annotations

import asyncio

from tests.unit.test_components import build_environment, config


def test_mocks_work_after_asyncio_run_left_the_thread_without_a_current_loop() -> None:
    async def nothing() -> None:
        return None

    asyncio.run(nothing())  # as a test client or an async helper does
    registry, _ = build_environment(config())
    assert {d.inputs["metadata"]["name"] for d in registry.of_type("kubernetes:apps/v1:Deployment")} == {
        "web",
        "worker",
    }
