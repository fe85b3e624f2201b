"""What is built, at which version, and whether the engine side matches the requirements.txt pins.

``verify`` is the check behind "a built plugin whose version differs from its SDK pin is an error":
it asks the engine itself (``pulumi version``, ``pulumi plugin ls``) rather than trusting our stamps,
so a plugin installed by hand into PULUMI_HOME is caught too.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prenv.errors import ToolError
from prenv.toolchain import cache
from prenv.toolchain.env import pulumi_env
from prenv.toolchain.recipes import all_recipes
from prenv.toolchain.recipes.pulumi_cli import engine_version
from prenv.toolchain.versions import Pins, check_plugin_version


@dataclass(frozen=True)
class ToolStatus:
    """One row of ``python -m prenv.toolchain status``."""

    name: str
    version: str
    built: bool
    path: Path
    source: str
    seconds: float
    peak_rss_mb: float


def tool_statuses(pins: Pins) -> list[ToolStatus]:
    rows = []
    for recipe in all_recipes(pins):
        built = recipe.is_built()
        for tool in recipe.tools():
            stamp = cache.read_stamp(tool.path.parent)
            rows.append(
                ToolStatus(
                    name=tool.name,
                    version=tool.version,
                    built=built,
                    path=tool.path,
                    source=stamp.source if stamp else recipe.source(),
                    seconds=stamp.seconds if stamp else 0.0,
                    peak_rss_mb=stamp.peak_rss_mb if stamp else 0.0,
                )
            )
    return rows


def reported_engine_version() -> str:
    """What the toolchain's ``pulumi version`` prints, without the leading ``v``."""
    out = _pulumi("version")
    return out.strip().lstrip("v")


def installed_plugins() -> list[tuple[str, str, str]]:
    """``(kind, name, version)`` for every plugin in PULUMI_HOME, as the engine sees them."""
    raw = json.loads(_pulumi("plugin", "ls", "--json") or "[]")
    return [(p.get("kind", ""), p.get("name", ""), str(p.get("version", ""))) for p in raw or []]


def verify(pins: Pins, keys: list[str]) -> None:
    """Raise ToolError naming the first engine-side tool whose version differs from its pin."""
    if "pulumi" in keys:
        got, expected = reported_engine_version(), engine_version(pins)
        if got != expected:
            raise ToolError(f"pulumi reports {got} but {expected} is expected (pulumi=={pins.pulumi})")
    if "language-python" in keys:
        stamp = cache.read_stamp(cache.tool_dir("pulumi-language-python", pins.pulumi))
        if stamp is not None:
            check_plugin_version("pulumi-language-python", stamp.version, "pulumi", pins.pulumi)
    if "kubernetes-provider" in keys:
        versions = [v for kind, name, v in installed_plugins() if kind == "resource" and name == "kubernetes"]
        if pins.pulumi_kubernetes not in versions:
            check_plugin_version(
                "pulumi-resource-kubernetes",
                ", ".join(versions) or "not installed",
                "pulumi-kubernetes",
                pins.pulumi_kubernetes,
            )


def _pulumi(*args: str) -> str:
    binary = cache.bin_dir() / "pulumi"
    if not binary.exists():
        raise ToolError(f"pulumi is missing from {cache.bin_dir()}; run `make tools`")
    proc = subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **pulumi_env()},
        timeout=120,
    )
    if proc.returncode != 0:
        raise ToolError(f"`pulumi {' '.join(args)}` failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout
