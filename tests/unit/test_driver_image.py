"""The driver image's recipe: the committed Containerfile is its rendering, and it holds only runtime pieces."""

from __future__ import annotations

from pathlib import Path

from devtools import driverimage

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_containerfile_is_the_recipe_rendered() -> None:
    assert (ROOT / "Containerfile").read_text() == driverimage.containerfile(), (
        "Containerfile is stale: python -m devtools.driverimage containerfile > Containerfile"
    )


def test_the_image_runs_as_a_non_root_user_that_owns_what_pulumi_writes() -> None:
    text = driverimage.containerfile()
    recipe = driverimage.RECIPE
    assert f"USER {recipe.uid}:{recipe.uid}" in text and recipe.uid != 0
    assert f"chown -R {recipe.uid}:{recipe.uid} {recipe.project} {recipe.tools}/pulumi-home" in text
    assert recipe.env["PRENV_STATE_DIR"] == recipe.home == recipe.env["HOME"]


def test_only_the_runtime_requirements_go_into_the_image() -> None:
    text = driverimage.containerfile()
    assert "requirements-dev.txt" not in text
    runtime = (ROOT / "requirements.txt").read_text()
    for tool in ("pytest", "moto", "ruff", "mypy", "hypothesis"):
        assert f"\n{tool}" not in runtime, f"{tool} is a development requirement"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
