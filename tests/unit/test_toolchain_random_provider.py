"""The random provider recipe: built at the pulumi-random pin from our bridge sources, generated files excluded."""

from __future__ import annotations

from pathlib import Path

from prenv.toolchain.goenv import parse_go_mod
from prenv.toolchain.recipes import recipe_for
from prenv.toolchain.recipes.random_provider import SOURCES, random_pin, source_files
from prenv.toolchain.versions import load_pins, read_requirement_pins


def test_the_plugin_is_built_at_the_sdk_pin_and_kept_off_path() -> None:
    recipe = recipe_for("pulumi-resource-random", load_pins())
    assert recipe.version() == random_pin() == read_requirement_pins()["pulumi-random"]
    assert recipe.on_path is False


def test_the_bridge_builds_from_the_served_modules_the_docs_name() -> None:
    mod = parse_go_mod((SOURCES / "go.mod").read_text(encoding="utf-8"))
    assert mod.requires["github.com/terraform-providers/terraform-provider-random"] == (
        "v1.3.2-0.20260513075824-f8d869dc98d9"
    )
    assert mod.requires["github.com/pulumi/pulumi-terraform-bridge/v3"] == "v3.137.0"
    assert mod.replaces["github.com/hashicorp/terraform-plugin-sdk/v2"] == (
        "github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b"
    )


def test_the_digest_covers_the_go_sources_but_not_generated_schema() -> None:
    files = source_files()
    assert files[:2] == [Path("go.mod"), Path("go.sum")]
    assert Path("provider.go") in files
    assert Path("cmd/pulumi-resource-random/main.go") in files
    assert Path("cmd/pulumi-tfgen-random/main.go") in files
    assert not [f for f in files if f.suffix == ".json" or f.name.endswith("_test.go")]
