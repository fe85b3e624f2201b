"""The Kubernetes control plane and node binaries from k8s.io/kubernetes, in one go build.

kube-apiserver, kube-controller-manager and kube-scheduler run the embedded cluster; kubelet and
kube-proxy make its real node. All five come from the same release so the node never skews from the
API server.

k8s.io/kubernetes requires ~30 staging modules as ``k8s.io/<x> v0.0.0`` and replaces them with
``./staging/src/k8s.io/<x>``, which does not exist outside the repository. Each release publishes those
modules as ``v0.<minor>.<patch>``, so a wrapper module maps every required, locally replaced one to
that version; the list is read from the downloaded go.mod, never hard-coded. The commands share most
packages (client-go, apimachinery, component-base), so building them in one invocation compiles the shared
code once.

Version ldflags go to both component-base and client-go, or ``/version`` answers v0.0.0.
"""

from __future__ import annotations

import shutil

from prenv.toolchain import cache
from prenv.toolchain.goenv import (
    GoMod,
    download,
    local_go_version,
    parse_go_mod,
    render_go_mod,
    write_if_changed,
)
from prenv.toolchain.recipes.base import ModuleRecipe, go_build, move_binary
from prenv.toolchain.runner import Runner, StepResult

MODULE = "k8s.io/kubernetes"
COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


class Kube(ModuleRecipe):
    key = "kube"
    module = MODULE
    pin = "kubernetes"
    tools_built = COMMANDS

    def build(self, runner: Runner) -> StepResult:
        v = f"v{self.version()}"
        module = download(runner, MODULE, v)
        upstream = parse_go_mod(module.go_mod.read_text(encoding="utf-8"))
        work = cache.work_dir(f"kube-{self.version()}")
        write_if_changed(work / "go.mod", wrapper_go_mod(v, upstream, local_go_version()))
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        result = go_build(
            runner,
            f"kubernetes {self.version()}: go build {' '.join(COMMANDS)}",
            cwd=work,
            output=f"{out}/",
            packages=[*(f"{MODULE}/cmd/{c}" for c in COMMANDS)],
            flags=version_flags(self.version(), module.origin_hash),
        )
        for name in COMMANDS:
            move_binary(out / name, self.binary(name))
        return result


def staging_version(version: str) -> str:
    """k8s.io/kubernetes v1.33.13 publishes its staging modules as v0.33.13."""
    _, minor, patch = version.lstrip("v").split(".", 2)
    return f"v0.{minor}.{patch}"


def wrapper_go_mod(version: str, upstream: GoMod, go: str) -> str:
    """Require k8s.io/kubernetes and pin each locally replaced module it requires to the release."""
    published = staging_version(version)
    replaces = dict(upstream.non_local_replaces())
    for old in upstream.local_replaces():
        path = old.split()[0]
        if path in upstream.requires:
            replaces[path] = f"{path} {published}"
    return render_go_mod("prenv.local/kube", go, {MODULE: version}, replaces, upstream.godebug)


def version_flags(version: str, commit: str) -> list[tuple[str, str]]:
    _, minor, _ = version.lstrip("v").split(".", 2)
    values = {
        "gitVersion": f"v{version.lstrip('v')}",
        "gitMajor": "1",
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    if commit:
        values["gitCommit"] = commit
    return [(f"{pkg}.{key}", value) for pkg in VERSION_PACKAGES for key, value in values.items()]
