"""Each public subpackage exports exactly what it means to (httpx's ``test_all_imports_are_exported``): every public
name defined at package level is in ``__all__``, and ``__all__`` names nothing that is not there. A helper that
leaks into a package's namespace, or an export that was renamed away, fails here instead of in a user's import."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_PACKAGES = (
    "components",
    "prenv.cluster",
    "prenv.db",
    "prenv.gateway",
    "prenv.sources",
    "prenv.toolchain",
)


def _public_names(package: str) -> set[str]:
    """Public names the package defines or re-exports from its own modules (a ``Path`` or an error class it merely
    uses is not its API)."""
    module = importlib.import_module(package)
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name != "annotations"
        and str(getattr(value, "__module__", package)).startswith(package)
    }


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_a_public_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(package)

    exported = getattr(module, "__all__", None)

    assert exported is not None, f"{package} has no __all__"
    assert sorted(_public_names(package) - set(exported)) == []  # nothing public left out
    assert [name for name in exported if not hasattr(module, name)] == []  # nothing exported that is not there
    assert len(set(exported)) == len(exported)


def test_the_fake_source_is_not_part_of_the_sources_package() -> None:
    sources = importlib.import_module("prenv.sources")

    assert "FakeSource" not in sources.__all__
    assert importlib.import_module("prenv.sources.fake").FakeSource is not None
