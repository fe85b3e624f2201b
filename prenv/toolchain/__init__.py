"""The offline toolchain: Pulumi engine, language host, providers and Kubernetes binaries built from Go.

Why: the machines that run prenv reach package registries (PyPI, the Go module proxy) but no download
sites, so every binary Pulumi and the embedded cluster need is built from Go module sources by
``make tools`` into a per-user cache outside the checkout (see docs/toolchain.md).

Public surface (other layers rely on exactly these names):

- :func:`tool_path` - where a built binary is, or a ToolError telling to run ``make tools``;
- :func:`pulumi_env` - the environment every pulumi invocation gets (merge over os.environ);
- :func:`cache_dir` - the tool cache root.
"""

from __future__ import annotations

from pathlib import Path

from prenv.errors import ToolError
from prenv.toolchain.cache import cache_dir
from prenv.toolchain.env import pulumi_env

__all__ = ["TOOLS", "cache_dir", "pulumi_env", "tool_path"]

TOOLS: tuple[str, ...] = (
    "pulumi",
    "pulumi-language-python",
    "pulumi-resource-kubernetes",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "etcd",
    "kwok",
    "kwokctl",
    "pause",
    "probe",
    "crictl",
    "coredns",
    "traefik",
)


def tool_path(name: str) -> Path:
    """Path of the built binary ``name`` (one of :data:`TOOLS`) at the pinned version.

    Raises ToolError "<name> <version> is missing; run `make tools`" when it has not been built.
    """
    from prenv.toolchain.recipes import recipe_for
    from prenv.toolchain.versions import load_pins

    recipe = recipe_for(name, load_pins())
    path = recipe.binary(name)
    if not path.exists():
        raise ToolError(f"{name} {recipe.version()} is missing (expected at {path}); run `make tools`")
    if not recipe.is_built():
        raise ToolError(f"{name} {recipe.version()} is out of date or incomplete, so missing; run `make tools`")
    return path
