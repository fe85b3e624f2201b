"""The Python language host, its exec script and the dynamic-provider shim, bundled with the engine.

The upstream host module (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) has no
tags and no version the module proxy serves, so we build our own host from ``tools/language-python/``
against sdk/v3 at the ``pulumi`` pin. Its go.mod must already require exactly that sdk/v3 and its go.sum
carry the matching sums: the build runs with ``-mod=readonly``, so a version is never rewritten behind
``GOSUMDB=off`` without a checked-in sum. The two scripts it relies on are the SDK's own, copied out of
the sdk/v3 module: ``pulumi-language-python-exec`` (runs a program) and ``pulumi-resource-pulumi-python``
(serves Python dynamic providers).

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
from prenv.toolchain.goenv import download, parse_go_mod
from prenv.toolchain.recipes.base import Recipe, go_build, install_file
from prenv.toolchain.recipes.pulumi_cli import engine_version
from prenv.toolchain.runner import Runner, StepResult

SDK = "github.com/pulumi/pulumi/sdk/v3"
SOURCES = Path(__file__).resolve().parents[3] / "tools" / "language-python"
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
        for name in source_files():
            h.update(name.encode() + b"\0" + (SOURCES / name).read_bytes())
        return h.hexdigest()[:16]

    def is_built(self) -> bool:
        if not super().is_built():
            return False
        here = self.binary(HOST).parent
        return all((here / f).exists() for f in self.files())

    def build(self, runner: Runner) -> StepResult:
        check_sdk_requirement(self.version())
        work = cache.work_dir(f"language-python-{self.version()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name in source_files():
            shutil.copyfile(SOURCES / name, work / name)
        result = go_build(
            runner,
            f"{HOST} {self.version()}: go build",
            cwd=work,
            output=self.binary(HOST),
            packages=["."],
            flags=[("main.version", self.version())],
            options=["-mod=readonly"],
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


def source_files() -> list[str]:
    """go.mod, go.sum and the host's Go files (tests excluded: they do not change the binary)."""
    names = ["go.mod", "go.sum"]
    names += sorted(p.name for p in SOURCES.glob("*.go") if not p.name.endswith("_test.go"))
    missing = [n for n in names[:2] if not (SOURCES / n).exists()]
    if missing or len(names) == 2:
        raise ToolError(f"{SOURCES} is incomplete (missing {', '.join(missing) or 'Go files'})")
    return names


def check_sdk_requirement(pin: str) -> None:
    """The host's go.mod must require sdk/v3 at the ``pulumi`` pin; it is never rewritten at build time."""
    required = parse_go_mod((SOURCES / "go.mod").read_text(encoding="utf-8")).requires.get(SDK)
    if required != f"v{pin}":
        raise ToolError(
            f"{SOURCES / 'go.mod'} requires {SDK} {required or '(nothing)'} but requirements.txt pins "
            f"pulumi=={pin}; run `go get {SDK}@v{pin} && go mod tidy` in {SOURCES} and commit go.mod and go.sum"
        )


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
