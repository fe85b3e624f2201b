"""crictl (sigs.k8s.io/cri-tools): the CRI client for the real node, as kubelet sees containerd.

The node's tests use it to run a pod sandbox through containerd's CRI plugin exactly as the kubelet would
(sandbox image, CNI bridge, iptables rules), and teardown stops sandboxes through it so the CNI plugins get
their DEL call. v1.34.0 is the oldest release served (v1.33.0 is 403); CRI is a stable v1 API, so it talks to
containerd 1.6 like any other release. Its go.mod has no replace or exclude lines.
"""

from __future__ import annotations

from prenv.toolchain import cache
from prenv.toolchain.goenv import local_go_version, render_go_mod, write_if_changed
from prenv.toolchain.recipes.base import ModuleRecipe, go_build
from prenv.toolchain.runner import Runner, StepResult

MODULE = "sigs.k8s.io/cri-tools"


class Crictl(ModuleRecipe):
    key = "crictl"
    module = MODULE
    pin = "cri_tools"
    tools_built = ("crictl",)

    def build(self, runner: Runner) -> StepResult:
        work = cache.work_dir(f"crictl-{self.version()}")
        write_if_changed(
            work / "go.mod",
            render_go_mod("prenv.local/crictl", local_go_version(), {MODULE: f"v{self.version()}"}),
        )
        return go_build(
            runner,
            f"crictl {self.version()}: go build",
            cwd=work,
            output=self.binary("crictl"),
            packages=[f"{MODULE}/cmd/crictl"],
            flags=[(f"{MODULE}/pkg/version.Version", self.version())],
        )
