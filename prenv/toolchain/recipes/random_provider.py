"""The random resource provider (pulumi-resource-random), bridged by us and installed into PULUMI_HOME.

Upstream's ``github.com/pulumi/pulumi-random/provider/v4`` has no version the module proxy serves, but
the provider is a thin bridge over terraform-provider-random, and that, the bridge and the framework are
served at exact versions (see ``tools/pulumi-random/go.mod``). So ``tools/pulumi-random/`` is our own
bridge program: a ProviderInfo mapping every ``random_*`` resource to ``random:index/<camelName>:<Name>``,
``pulumi-tfgen-random`` generating the schema from it, and ``pulumi-resource-random`` embedding that
schema. Both are built with ``-mod=readonly`` against the checked-in go.sum.

The plugin's version is the ``pulumi-random`` pin in requirements.txt (the SDK the programs import);
``tests/integration/test_random_provider.py`` proves the SDK's resource tokens equal the schema's. The
binary is installed with ``pulumi plugin install --file`` like the kubernetes provider and kept off PATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from prenv.errors import ToolError
from prenv.toolchain import cache
from prenv.toolchain.goenv import go_binary, go_env, ldflags
from prenv.toolchain.recipes.base import Recipe, install_file
from prenv.toolchain.runner import Runner, StepResult
from prenv.toolchain.versions import check_plugin_version, read_requirement_pins

SOURCES = Path(__file__).resolve().parents[3] / "tools" / "pulumi-random"
MODULE = "github.com/terraform-providers/terraform-provider-random/pulumibridge"
VERSION_VAR = f"{MODULE}.Version"
NAME = "pulumi-resource-random"
TFGEN = "pulumi-tfgen-random"
SCHEMA = "schema.json"
GENERATED = (SCHEMA, "bridge-metadata.json")


def random_pin() -> str:
    """The ``pulumi-random==`` pin of requirements.txt: the plugin is built at exactly that version."""
    pin = read_requirement_pins().get("pulumi-random")
    if pin is None:
        raise ToolError("requirements.txt must pin pulumi-random==<version> (the random plugin is built at it)")
    return pin


class RandomProvider(Recipe):
    key = "random-provider"
    on_path = False

    def version(self) -> str:
        return random_pin()

    def tool_names(self) -> tuple[str, ...]:
        return (NAME,)

    def source(self) -> str:
        return "tools/pulumi-random (ours) over github.com/terraform-providers/terraform-provider-random"

    def digest(self) -> str:
        h = hashlib.sha256()
        for rel in source_files():
            h.update(str(rel).encode() + b"\0" + (SOURCES / rel).read_bytes())
        return h.hexdigest()[:16]

    def schema_path(self) -> Path:
        """The generated schema, kept next to the binary for the token compatibility test."""
        return self.binary(NAME).parent / SCHEMA

    def build(self, runner: Runner) -> StepResult:
        work = cache.work_dir(f"random-provider-{self.version()}")
        src = work / "src"
        shutil.rmtree(src, ignore_errors=True)
        for rel in source_files():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SOURCES / rel, src / rel)
        flags = ldflags((VERSION_VAR, self.version()))
        tfgen = work / TFGEN
        steps: list[StepResult] = []
        tfgen_build = runner.run(
            f"{TFGEN} {self.version()}: go build",
            [go_binary(), "build", "-mod=readonly", "-trimpath", "-ldflags", flags, "-o", tfgen, f"./cmd/{TFGEN}"],
            cwd=src,
            env=go_env(),
        )
        cmd_dir = src / "cmd" / NAME
        steps.append(tfgen_build)
        steps.append(
            runner.run(
                f"{TFGEN} schema",
                [tfgen, "schema", "--out", cmd_dir],
                cwd=src,
                env={**go_env(), "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_HOME": str(work / "pulumi-home")},
            )
        )
        missing = [name for name in GENERATED if not (cmd_dir / name).exists()]
        if missing:
            raise ToolError(f"{TFGEN} did not write {', '.join(missing)} into {cmd_dir}")
        provider_build = runner.run(
            f"{NAME} {self.version()}: go build",
            [
                go_binary(),
                "build",
                "-mod=readonly",
                "-trimpath",
                "-ldflags",
                flags,
                "-o",
                self.binary(NAME),
                f"./cmd/{NAME}",
            ],
            cwd=src,
            env=go_env(),
        )
        steps.append(provider_build)
        install_file(cmd_dir / SCHEMA, self.schema_path(), mode=0o644)
        # The stamp records the whole recipe: nearly all compiling happens in the tfgen build.
        return StepResult(seconds=sum(s.seconds for s in steps), peak_rss_mb=max(s.peak_rss_mb for s in steps))

    def plugin_dir(self) -> Path:
        return cache.pulumi_home() / "plugins" / f"resource-random-v{self.version()}"

    def is_installed(self) -> bool:
        d = self.plugin_dir()
        return (d / NAME).exists() and not d.with_name(d.name + ".partial").exists()

    def post(self, runner: Runner) -> None:
        if self.is_installed():
            runner.cached(f"plugin resource random {self.version()}", str(self.plugin_dir()))
        else:
            from prenv.toolchain.env import pulumi_env  # late: env needs the engine recipe's result

            runner.run(
                f"pulumi plugin install resource random {self.version()}",
                [
                    cache.bin_dir() / "pulumi",
                    "plugin",
                    "install",
                    "resource",
                    "random",
                    self.version(),
                    "--file",
                    self.binary(NAME),
                ],
                env={**os.environ, **pulumi_env()},
            )
        from prenv.toolchain.status import installed_plugins  # late: status imports the recipes

        versions = [v for kind, name, v in installed_plugins() if kind == "resource" and name == "random"]
        if self.version() not in versions:
            check_plugin_version(NAME, ", ".join(versions) or "not installed", "pulumi-random", self.version())


def source_files() -> list[Path]:
    """go.mod, go.sum and the Go sources, relative to tools/pulumi-random (generated files excluded)."""
    files = [Path("go.mod"), Path("go.sum")]
    files += sorted(p.relative_to(SOURCES) for p in SOURCES.rglob("*.go") if not p.name.endswith("_test.go"))
    missing = [str(f) for f in files[:2] if not (SOURCES / f).exists()]
    if missing or len(files) == 2:
        raise ToolError(f"{SOURCES} is incomplete (missing {', '.join(missing) or 'Go files'})")
    return files
