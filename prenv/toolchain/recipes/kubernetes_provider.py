"""The Kubernetes resource provider (pulumi-resource-kubernetes), built and installed into PULUMI_HOME.

The provider module is taken at the pseudo-version recorded in versions.py (it has no tags). Its
``main`` embeds ``schema-embed.json`` and ``terraform-mapping-embed.json``, which its ``go:generate``
step writes from the checked-in ``schema.json`` / ``terraform-mapping.json`` (stamping the version into
the schema) and which are therefore not in the module zip: the module is copied to a writable
directory and the same transformation is done here, without compiling pulumi's codegen for it. Its
go.mod replaces sdk/v4 with ``../sdk``; the copy requires the published sdk/v4 at the pin instead.

The binary is installed with ``pulumi plugin install --file`` so the engine finds it by version, like a
downloaded plugin; it is deliberately not put on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from prenv.toolchain import cache
from prenv.toolchain.goenv import download, go_binary, go_env
from prenv.toolchain.recipes.base import Recipe, go_build
from prenv.toolchain.runner import Runner, StepResult
from prenv.toolchain.versions import KUBERNETES_PROVIDER_MODULE, provider_pseudo_version

SDK_MODULE = "github.com/pulumi/pulumi-kubernetes/sdk/v4"
VERSION_VAR = f"{KUBERNETES_PROVIDER_MODULE}/pkg/version.Version"
CMD = "cmd/pulumi-resource-kubernetes"
NAME = "pulumi-resource-kubernetes"


class KubernetesProvider(Recipe):
    key = "kubernetes-provider"
    on_path = False

    def version(self) -> str:
        return self.pins.pulumi_kubernetes

    def tool_names(self) -> tuple[str, ...]:
        return (NAME,)

    def source(self) -> str:
        return f"{KUBERNETES_PROVIDER_MODULE}@{provider_pseudo_version(self.version())}"

    def build(self, runner: Runner) -> StepResult:
        pseudo = provider_pseudo_version(self.version())
        module = download(runner, KUBERNETES_PROVIDER_MODULE, pseudo)
        src = cache.work_dir(f"kubernetes-provider-{self.version()}") / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(module.dir, src, copy_function=shutil.copyfile)
        _make_writable(src)
        runner.capture(
            "kubernetes provider: use published sdk/v4",
            [
                go_binary(),
                "mod",
                "edit",
                f"-dropreplace={SDK_MODULE}",
                f"-require={SDK_MODULE}@v{self.version()}",
            ],
            cwd=src,
            env=go_env(),
        )
        generate_embeds(src / CMD, self.version())
        return go_build(
            runner,
            f"{NAME} {self.version()}: go build",
            cwd=src,
            output=self.binary(NAME),
            packages=[f"./{CMD}"],
            flags=[(VERSION_VAR, self.version())],
        )

    def plugin_dir(self) -> Path:
        return cache.pulumi_home() / "plugins" / f"resource-kubernetes-v{self.version()}"

    def is_installed(self) -> bool:
        d = self.plugin_dir()
        return (d / NAME).exists() and not d.with_name(d.name + ".partial").exists()

    def post(self, runner: Runner) -> None:
        if self.is_installed():
            runner.cached(f"plugin resource kubernetes {self.version()}", str(self.plugin_dir()))
            return
        from prenv.toolchain.env import pulumi_env  # late: env needs the engine recipe's result

        runner.run(
            f"pulumi plugin install resource kubernetes {self.version()}",
            [
                cache.bin_dir() / "pulumi",
                "plugin",
                "install",
                "resource",
                "kubernetes",
                self.version(),
                "--file",
                self.binary(NAME),
            ],
            env={**os.environ, **pulumi_env()},
        )


def generate_embeds(cmd_dir: Path, version: str) -> None:
    """What the provider's generate.go does: version-stamped schema and compact mapping JSON."""
    schema = json.loads((cmd_dir / "schema.json").read_text(encoding="utf-8"))
    schema["version"] = version
    (cmd_dir / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")), encoding="utf-8")
    mapping = json.loads((cmd_dir / "terraform-mapping.json").read_text(encoding="utf-8"))
    (cmd_dir / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")), encoding="utf-8")


def _make_writable(root: Path) -> None:
    for dirpath, _, _ in os.walk(root):
        path = Path(dirpath)
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
