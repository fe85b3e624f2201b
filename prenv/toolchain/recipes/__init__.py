"""The recipes, in build order: etcd and KWOK, the engine side, then the Kubernetes binaries, the node's
sandbox process and crictl, CoreDNS and Traefik (the longest builds; only the real node and the ingress need
them).

Order also encodes dependencies: the language host bundles itself next to the engine and the
kubernetes and random providers are installed with the engine, so all three come after ``pulumi``.
"""

from __future__ import annotations

from prenv.errors import ToolError
from prenv.toolchain.recipes.base import Built, Recipe
from prenv.toolchain.recipes.coredns import CoreDns
from prenv.toolchain.recipes.crictl import Crictl
from prenv.toolchain.recipes.etcd import Etcd
from prenv.toolchain.recipes.kube import Kube
from prenv.toolchain.recipes.kubernetes_provider import KubernetesProvider
from prenv.toolchain.recipes.kwok import Kwok
from prenv.toolchain.recipes.language_host import LanguageHost
from prenv.toolchain.recipes.pause import Pause
from prenv.toolchain.recipes.probe import Probe
from prenv.toolchain.recipes.pulumi_cli import PulumiCli
from prenv.toolchain.recipes.random_provider import RandomProvider
from prenv.toolchain.recipes.traefik import Traefik
from prenv.toolchain.versions import Pins

__all__ = ["Built", "Recipe", "all_recipes", "recipe_for", "select"]

ORDER: tuple[type[Recipe], ...] = (
    Etcd,
    Kwok,
    PulumiCli,
    LanguageHost,
    KubernetesProvider,
    RandomProvider,
    Kube,
    Pause,
    Probe,
    Crictl,
    CoreDns,
    Traefik,
)
# Recipes that need another one in place first (bundling next to the engine, installing with it).
NEEDS: dict[str, tuple[str, ...]] = {
    "language-python": ("pulumi",),
    "kubernetes-provider": ("pulumi",),
    "random-provider": ("pulumi",),
}


def all_recipes(pins: Pins) -> list[Recipe]:
    return [cls(pins) for cls in ORDER]


def recipe_for(name: str, pins: Pins) -> Recipe:
    """The recipe producing tool ``name`` (or whose key is ``name``)."""
    for recipe in all_recipes(pins):
        if name == recipe.key or name in recipe.tool_names():
            return recipe
    known = sorted({t for r in all_recipes(pins) for t in r.tool_names()})
    raise ToolError(f"unknown tool {name!r}; known tools: {', '.join(known)}")


def select(names: list[str], pins: Pins) -> list[Recipe]:
    """Recipes for ``names`` in build order (all of them when ``names`` is empty)."""
    if not names:
        return all_recipes(pins)
    wanted = {recipe_for(n, pins).key for n in names}
    wanted |= {need for key in list(wanted) for need in NEEDS.get(key, ())}
    return [r for r in all_recipes(pins) if r.key in wanted]
