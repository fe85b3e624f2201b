"""The Python language host, its exec script and the dynamic-provider shim, bundled with the engine.

The upstream host module (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) has no
tags and no version the module proxy serves, so we build our own small host from
``tools/language-python/`` against sdk/v3 at the ``pulumi`` pin. The two scripts it relies on are the
SDK's own, copied out of the sdk/v3 module: ``pulumi-language-python-exec`` (runs a program) and
``pulumi-resource-pulumi-python`` (serves Python dynamic providers).

The engine looks for bundled plugins next to its own resolved executable and warns when the copy found
on PATH is a different file, so the three files are also hard-linked into the engine's directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from prenv.errors import ToolError
from prenv.toolchain import cache
from prenv.toolchain.goenv import download, go_binary, go_env, ldflags
from prenv.toolchain.recipes.base import Recipe, install_file
from prenv.toolchain.recipes.pulumi_cli import engine_version
from prenv.toolchain.runner import Runner, StepResult

SDK = "github.com/pulumi/pulumi/sdk/v3"
SOURCES = Path(__file__).resolve().parents[3] / "tools" / "language-python"
SOURCE_FILES = ("main.go", "go.mod", "go.sum")
HOST = "pulumi-language-python"
EXEC = "pulumi-language-python-exec"
SHIM = "pulumi-resource-pulumi-python"
# Where each script lives inside the sdk/v3 module.
SCRIPTS = {EXEC: Path("python/cmd") / EXEC, SHIM: Path("python/dist") / SHIM}


class LanguageHost(Recipe):
    key = "language-python"

    def version(self) -> str:
        return self.pins.pulumi

    def tool_names(self) -> tuple[str, ...]:
        return (HOST,)

    def files(self) -> tuple[str, ...]:
        """Everything that must sit on PATH and next to the engine."""
        return (HOST, EXEC, SHIM)

    def source(self) -> str:
        return f"tools/language-python (ours) + {SDK}@v{self.version()} scripts"

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in SOURCE_FILES:
            path = SOURCES / name
            if not path.exists():
                raise ToolError(f"{path} is missing from the checkout")
            h.update(name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:16]

    def is_built(self) -> bool:
        if not super().is_built():
            return False
        here = self.binary(HOST).parent
        return all((here / f).exists() for f in self.files())

    def build(self, runner: Runner) -> StepResult:
        work = cache.work_dir(f"language-python-{self.version()}")
        work.mkdir(parents=True, exist_ok=True)
        for name in SOURCE_FILES:
            shutil.copyfile(SOURCES / name, work / name)
        runner.capture(
            "language host: pin sdk/v3",
            [go_binary(), "mod", "edit", f"-require={SDK}@v{self.version()}"],
            cwd=work,
            env=go_env(),
        )
        result = runner.run(
            f"{HOST} {self.version()}: go build",
            [
                go_binary(),
                "build",
                "-trimpath",
                "-ldflags",
                ldflags(("main.version", self.version())),
                "-o",
                self.binary(HOST),
                ".",
            ],
            cwd=work,
            env=go_env(),
        )
        sdk = download(runner, SDK, f"v{self.version()}")
        here = self.binary(HOST).parent
        for name, rel in SCRIPTS.items():
            install_file(sdk.dir / rel, here / name)
        return result

    def publish(self) -> None:
        here = self.binary(HOST).parent
        engine_dir = cache.tool_dir("pulumi", engine_version(self.pins))
        engine = engine_dir / "pulumi"
        bundle = engine.exists() and not engine.is_symlink()
        for name in self.files():
            if bundle:
                _hardlink(here / name, engine_dir / name)
                cache.link(engine_dir / name, cache.bin_dir() / name)
            else:
                cache.link(here / name, cache.bin_dir() / name)


def _hardlink(src: Path, dest: Path) -> None:
    if dest.exists() and os.path.samefile(src, dest):
        return
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    tmp.replace(dest)
