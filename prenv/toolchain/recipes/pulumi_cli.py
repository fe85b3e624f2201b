"""The Pulumi engine (``pulumi`` CLI), built from github.com/pulumi/pulumi/pkg/v3.

pkg/v3's go.mod replaces sdk/v3 with ``../sdk`` and carries a few replaces of its own; as a dependency
those are ignored, so a wrapper module requires pkg/v3 and sdk/v3 at the same release and repeats the
non-local replaces of both. The version ldflag matters: without it ``pulumi version`` prints nothing and
the Automation API refuses the binary.

Fastest path first: a ``pulumi`` already on PATH that reports the SDK pin (or, failing that, the
version we would build) is linked, not built.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from prenv.toolchain import cache
from prenv.toolchain.goenv import (
    GoMod,
    download,
    local_go_version,
    parse_go_mod,
    render_go_mod,
    write_if_changed,
)
from prenv.toolchain.recipes.base import Recipe, go_build
from prenv.toolchain.runner import Runner, StepResult
from prenv.toolchain.versions import Pins

logger = logging.getLogger(__name__)

PKG = "github.com/pulumi/pulumi/pkg/v3"
SDK = "github.com/pulumi/pulumi/sdk/v3"
VERSION_VAR = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"


class PulumiCli(Recipe):
    key = "pulumi"
    _external: Path | None = None
    _version: str | None = None

    def version(self) -> str:
        return self._version or engine_version(self.pins)

    def tool_names(self) -> tuple[str, ...]:
        return ("pulumi",)

    def source(self) -> str:
        if self._external is not None:
            return f"external:{self._external}"
        return f"{PKG}@v{self.version()}"

    def build(self, runner: Runner) -> StepResult | None:
        for wanted in dict.fromkeys((self.pins.pulumi, self.pins.engine)):
            external = find_external_pulumi(wanted)
            if external is not None:
                self._external, self._version = external, wanted
                cache.link(external, self.binary("pulumi"))
                runner.note(f"pulumi {wanted}: using {external} (already on PATH at this version)")
                return None
        v = f"v{self.version()}"
        pkg = parse_go_mod(download(runner, PKG, v).go_mod.read_text(encoding="utf-8"))
        sdk = parse_go_mod(download(runner, SDK, v).go_mod.read_text(encoding="utf-8"))
        work = cache.work_dir(f"pulumi-{self.version()}")
        write_if_changed(work / "go.mod", wrapper_go_mod(v, pkg, sdk, local_go_version()))
        out = self.binary("pulumi")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_symlink():
            out.unlink()
        return go_build(
            runner,
            f"pulumi {self.version()}: go build",
            cwd=work,
            output=out,
            packages=[f"{PKG}/cmd/pulumi"],
            flags=[(VERSION_VAR, v)],
        )


def engine_version(pins: Pins) -> str:
    """The engine in use: the SDK pin when the cache has it (e.g. linked from PATH), else the buildable one."""
    if cache.read_stamp(cache.tool_dir("pulumi", pins.pulumi)) is not None:
        return pins.pulumi
    return pins.engine


def wrapper_go_mod(version: str, pkg: GoMod, sdk: GoMod, go: str) -> str:
    replaces = {**sdk.non_local_replaces(), **pkg.non_local_replaces()}
    return render_go_mod("prenv.local/pulumi", go, {PKG: version, SDK: version}, replaces)


def find_external_pulumi(version: str) -> Path | None:
    """A ``pulumi`` on PATH, outside our cache, whose ``pulumi version`` is ``v<version>``."""
    ours = cache.cache_dir().resolve()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("pulumi", path=entry) if entry else None
        if candidate is None:
            continue
        resolved = Path(candidate).resolve()
        if resolved.is_relative_to(ours):
            continue
        try:
            proc = subprocess.run(
                [candidate, "version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip().lstrip("v") == version:
            return Path(candidate)
        logger.debug("ignoring %s: reports %r", candidate, proc.stdout.strip())
    return None
