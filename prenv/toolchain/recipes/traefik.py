"""Traefik, the embedded cluster's ingress controller, from github.com/traefik/traefik/v3.

Traefik's go.mod replaces two modules with its own forks and excludes a tencentcloud SDK version that is
not served; a module that merely requires Traefik gets neither (replace and exclude only apply in the
main module), so the wrapper repeats upstream's non-local replace and exclude lines, read from the
downloaded go.mod as the kube recipe does. Without them the build picks the unforked gorilla/mux and fails.

The version is a plain variable (``dev`` unless set by the linker). The web UI's ``static`` directory in
the module holds only a placeholder, so the dashboard must stay off at run time.
"""

from __future__ import annotations

from prenv.toolchain import cache
from prenv.toolchain.goenv import (
    GoMod,
    download,
    local_go_version,
    parse_go_mod,
    render_go_mod,
    write_if_changed,
)
from prenv.toolchain.recipes.base import ModuleRecipe, go_build
from prenv.toolchain.runner import Runner, StepResult

MODULE = "github.com/traefik/traefik/v3"
COMMAND = f"{MODULE}/cmd/traefik"


class Traefik(ModuleRecipe):
    key = "traefik"
    module = MODULE
    pin = "traefik"
    tools_built = ("traefik",)

    def build(self, runner: Runner) -> StepResult:
        v = f"v{self.version()}"
        module = download(runner, MODULE, v)
        upstream = parse_go_mod(module.go_mod.read_text(encoding="utf-8"))
        work = cache.work_dir(f"traefik-{self.version()}")
        write_if_changed(work / "go.mod", wrapper_go_mod(v, upstream, local_go_version()))
        return go_build(
            runner,
            f"traefik {self.version()}: go build",
            cwd=work,
            output=self.binary("traefik"),
            packages=[COMMAND],
            flags=version_flags(v),
        )


def wrapper_go_mod(version: str, upstream: GoMod, go: str) -> str:
    """Require Traefik and repeat its replace (to modules, not directories) and exclude lines."""
    return render_go_mod(
        "prenv.local/traefik",
        go,
        {MODULE: version},
        upstream.non_local_replaces(),
        upstream.godebug,
        upstream.excludes,
    )


def version_flags(version: str) -> list[tuple[str, str]]:
    return [(f"{MODULE}/pkg/version.Version", version)]
