"""kwok and kwokctl (sigs.k8s.io/kwok), plus the stage definitions kwok 0.8 expects as config.

Since 0.8 the default node/pod lifecycle stages are no longer compiled in; they ship as YAML under
``kustomize/stage/`` in the module. They are copied to ``<cache>/kwok-<version>/stages/`` (same layout,
test data left out) so the cluster code can pass e.g. ``stages/node/fast/node-initialize.yaml`` with
``--config``.
"""

from __future__ import annotations

import shutil

from prenv.toolchain import cache
from prenv.toolchain.goenv import (
    download,
    local_go_version,
    render_go_mod,
    write_if_changed,
)
from prenv.toolchain.recipes.base import ModuleRecipe, go_build, move_binary
from prenv.toolchain.runner import Runner, StepResult

MODULE = "sigs.k8s.io/kwok"


class Kwok(ModuleRecipe):
    key = "kwok"
    module = MODULE
    pin = "kwok"
    tools_built = ("kwok", "kwokctl")

    def stages_dir(self) -> str:
        return str(cache.tool_dir("kwok", self.version()) / "stages")

    def build(self, runner: Runner) -> StepResult:
        work = cache.work_dir(f"kwok-{self.version()}")
        write_if_changed(
            work / "go.mod",
            render_go_mod("prenv.local/kwok", local_go_version(), {MODULE: f"v{self.version()}"}),
        )
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        result = go_build(
            runner,
            f"kwok {self.version()}: go build kwok kwokctl",
            cwd=work,
            output=f"{out}/",
            packages=[f"{MODULE}/cmd/kwok", f"{MODULE}/cmd/kwokctl"],
        )
        for name in self.tool_names():
            move_binary(out / name, self.binary(name))
        self._copy_stages(runner)
        return result

    def _copy_stages(self, runner: Runner) -> None:
        module = download(runner, MODULE, f"v{self.version()}")
        src = module.dir / "kustomize" / "stage"
        dest = cache.tool_dir("kwok", self.version()) / "stages"
        shutil.rmtree(dest, ignore_errors=True)
        for path in sorted(src.rglob("*.yaml")):
            rel = path.relative_to(src)
            if "testdata" in rel.parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            target.chmod(0o644)
