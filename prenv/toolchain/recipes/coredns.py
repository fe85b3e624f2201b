"""CoreDNS, the cluster DNS of the embedded cluster: ``<service>.<namespace>.svc`` names for real pods.

The repository root of github.com/coredns/coredns is itself the ``main`` package and its go.mod has no
replace or exclude directives, so a wrapper module that only requires the release can build it. The
plugin list is the one upstream generated and committed (core/plugin/zplugin.go), which includes
``kubernetes``, ``forward`` and ``cache``.

CoreDNS prints its version from a constant in the source; only the commit is set by the linker, and the
proxy does not always report one (then the tag stands in for it).
"""

from __future__ import annotations

from prenv.toolchain import cache
from prenv.toolchain.goenv import (
    download,
    local_go_version,
    render_go_mod,
    write_if_changed,
)
from prenv.toolchain.recipes.base import ModuleRecipe, go_build
from prenv.toolchain.runner import Runner, StepResult

MODULE = "github.com/coredns/coredns"


class CoreDns(ModuleRecipe):
    key = "coredns"
    module = MODULE
    pin = "coredns"
    tools_built = ("coredns",)

    def build(self, runner: Runner) -> StepResult:
        v = f"v{self.version()}"
        module = download(runner, MODULE, v)
        work = cache.work_dir(f"coredns-{self.version()}")
        write_if_changed(work / "go.mod", wrapper_go_mod(v, local_go_version()))
        return go_build(
            runner,
            f"coredns {self.version()}: go build",
            cwd=work,
            output=self.binary("coredns"),
            packages=[MODULE],
            flags=version_flags(v, module.origin_hash),
        )


def wrapper_go_mod(version: str, go: str) -> str:
    return render_go_mod("prenv.local/coredns", go, {MODULE: version})


def version_flags(version: str, commit: str) -> list[tuple[str, str]]:
    """``coremain.GitCommit``: the commit when the proxy names one, else the tag."""
    return [(f"{MODULE}/coremain.GitCommit", commit or version)]
