"""What every recipe shares: the tools it produces, where they live, and how "already built" is decided.

A recipe is built when each of its tool directories carries a stamp for the expected version and
source digest and the binary is there; checking that never runs Go, which keeps a warm ``make tools``
to a second or two.
"""

from __future__ import annotations

import hashlib
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from prenv.toolchain import cache
from prenv.toolchain.goenv import go_binary, go_env, ldflags, local_go_version, render_go_mod, write_if_changed
from prenv.toolchain.runner import Runner, StepResult
from prenv.toolchain.versions import Pins


@dataclass(frozen=True)
class Built:
    """One tool of a recipe: its name, version and binary."""

    name: str
    version: str
    path: Path


class Recipe(ABC):
    """Builds one or more tools from one source; subclasses set ``key`` and implement the rest."""

    key: str
    # Tools symlinked into <cache>/bin (the PATH dir). Plugins installed into PULUMI_HOME stay out of
    # it: an ambient plugin on PATH would be used for every requested version and hide mismatches.
    on_path: bool = True

    def __init__(self, pins: Pins) -> None:
        self.pins = pins

    @abstractmethod
    def version(self) -> str:
        """The version every tool of this recipe is built at."""

    @abstractmethod
    def tool_names(self) -> tuple[str, ...]:
        """The binaries this recipe produces."""

    def source(self) -> str:
        """Human-readable origin recorded in stamps and shown by ``status``."""
        return ""

    def digest(self) -> str:
        """Changes when the recipe's own inputs change (e.g. our Go sources); empty if none."""
        return ""

    def tools(self) -> list[Built]:
        return [Built(n, self.version(), self.binary(n)) for n in self.tool_names()]

    def binary(self, name: str) -> Path:
        return cache.tool_dir(name, self.version()) / name

    def is_built(self) -> bool:
        for tool in self.tools():
            stamp = cache.read_stamp(tool.path.parent)
            if stamp is None or stamp.version != tool.version or stamp.digest != self.digest():
                return False
            if not tool.path.exists():
                return False
        return True

    @abstractmethod
    def build(self, runner: Runner) -> StepResult | None:
        """Produce every tool binary at :meth:`binary`; return the main step's measurements."""

    def post(self, runner: Runner) -> None:  # noqa: B027 - optional hook
        """Runs after the build or the cache hit, e.g. to install a plugin; default: nothing."""

    def finish(self, result: StepResult | None, source: str | None = None) -> None:
        """Stamp every tool directory; call only after all files are in place."""
        for tool in self.tools():
            cache.write_stamp(
                tool.path.parent,
                cache.Stamp(
                    name=tool.name,
                    version=tool.version,
                    source=source or self.source(),
                    digest=self.digest(),
                    seconds=round(result.seconds, 1) if result else 0.0,
                    peak_rss_mb=round(result.peak_rss_mb) if result else 0.0,
                ),
            )

    def publish(self) -> None:
        """Symlink this recipe's tools into the PATH directory."""
        if not self.on_path:
            return
        for tool in self.tools():
            cache.link(tool.path, cache.bin_dir() / tool.name)


class ModuleRecipe(Recipe):
    """A recipe whose tools are commands of one upstream Go module, built at a version pinned in Pins.

    Subclasses set ``key``, ``module`` (the module path), ``pin`` (the Pins field with its version) and ``tools``
    (the binaries), and implement ``build``.
    """

    module: ClassVar[str]
    pin: ClassVar[str]
    tools_built: ClassVar[tuple[str, ...]]

    def version(self) -> str:
        version: str = getattr(self.pins, self.pin)
        return version

    def tool_names(self) -> tuple[str, ...]:
        return self.tools_built

    def source(self) -> str:
        return f"{self.module}@v{self.version()}"


class OwnProgramRecipe(Recipe):
    """A recipe for a one-file Go program of ours (``main.go`` held in the recipe's module as ``main_go``), built
    with no dependencies into a binary named ``key``; its digest follows the source, so editing it rebuilds."""

    main_go: ClassVar[str]
    program_version: ClassVar[str]
    on_path = False  # an image ingredient, not a command

    def version(self) -> str:
        return self.program_version

    def tool_names(self) -> tuple[str, ...]:
        return (self.key,)

    def source(self) -> str:
        return f"{type(self).__module__} (ours)"

    def digest(self) -> str:
        return hashlib.sha256(self.main_go.encode()).hexdigest()[:16]

    def build(self, runner: Runner) -> StepResult:
        work = cache.work_dir(f"{self.key}-{self.version()}")
        write_if_changed(work / "main.go", self.main_go)
        write_if_changed(work / "go.mod", render_go_mod(f"prenv.local/{self.key}", local_go_version(), {}))
        return go_build(
            runner,
            f"{self.key} {self.version()}: go build",
            cwd=work,
            output=self.binary(self.key),
            packages=["."],
            flags=[("main.version", self.version())],
        )


def go_build(
    runner: Runner,
    label: str,
    *,
    cwd: Path,
    output: Path | str,
    packages: Sequence[str],
    flags: Sequence[tuple[str, str]] = (),
    options: Sequence[str] = (),
) -> StepResult:
    """``go build -trimpath -ldflags <-X flags> -o <output> <packages>`` in ``cwd`` with the toolchain's Go
    environment; ``output`` ending in ``/`` is a directory for several commands."""
    return runner.run(
        label,
        [go_binary(), "build", *options, "-trimpath", "-ldflags", ldflags(*flags), "-o", str(output), *packages],
        cwd=cwd,
        env=go_env(),
    )


def install_file(src: Path, dest: Path, mode: int = 0o755) -> None:
    """Copy a file (often out of the read-only module cache) and make it executable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.chmod(mode)
    tmp.replace(dest)


def move_binary(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    src.replace(dest)
