"""``make tools``: build what is missing, in order, one step at a time, and say what was cached.

The engine side (pulumi, language host, kubernetes plugin) is verified against the requirements.txt
pins after building, so a stale or mismatched plugin is reported by name instead of surfacing later as
a confusing engine error. A full build (no names) also checks the Debian packages the real node runs on
first: a missing one is a setup problem worth hearing about before twenty minutes of compiling.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

from prenv.toolchain import cache, debian
from prenv.toolchain.recipes import select
from prenv.toolchain.recipes.pulumi_cli import engine_version
from prenv.toolchain.runner import Runner
from prenv.toolchain.status import verify
from prenv.toolchain.versions import load_pins

logger = logging.getLogger(__name__)


def build(names: list[str], out: TextIO | None = None) -> Runner:
    """Build the recipes producing ``names`` (all when empty); raise ToolError on the first failure."""
    pins = load_pins()
    runner = Runner(out)
    started = time.monotonic()
    runner.note(f"tool cache: {cache.cache_dir()}")
    if engine_version(pins) != pins.pulumi:
        runner.note(
            f"note: pulumi engine {pins.engine} for SDK pin {pins.pulumi} "
            "(the pin's engine source is not served; see docs/toolchain.md)"
        )
    if not names:
        debian.ensure(runner)
    for recipe in select(names, pins):
        if recipe.is_built():
            stamp = cache.read_stamp(recipe.binary(recipe.tool_names()[0]).parent)
            runner.cached(
                f"{', '.join(recipe.tool_names())} {recipe.version()}",
                stamp.source if stamp else "",
            )
        else:
            result = recipe.build(runner)
            recipe.finish(result)
        recipe.publish()
        recipe.post(runner)
    verify(pins, [r.key for r in select(names, pins)])
    runner.note(f"toolchain ready in {time.monotonic() - started:.1f}s")
    return runner
