"""Cache layout, stamps, the pulumi environment and the "run make tools" error."""

from __future__ import annotations

from pathlib import Path

import pytest

from prenv import toolchain
from prenv.errors import ToolError
from prenv.toolchain import cache, env
from prenv.toolchain.recipes import recipe_for, select
from prenv.toolchain.versions import load_pins


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRENV_TOOLS_CACHE", str(tmp_path / "tools"))
    return tmp_path / "tools"


def test_cache_dir_prefers_prenv_tools_cache_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRENV_TOOLS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "prenv" / "tools"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "prenv" / "tools"
    monkeypatch.setenv("PRENV_TOOLS_CACHE", str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit"


def test_each_tool_lives_in_a_name_version_directory_and_pulumi_home_in_the_cache(empty_cache: Path) -> None:
    assert cache.tool_dir("etcd", "3.5.35") == empty_cache / "etcd-3.5.35"
    assert cache.pulumi_home() == empty_cache / "pulumi-home"


@pytest.mark.parametrize("name", toolchain.TOOLS)
def test_a_missing_tool_is_an_error_telling_to_run_make_tools(empty_cache: Path, name: str) -> None:
    with pytest.raises(ToolError, match=r"missing .*run `make tools`"):
        toolchain.tool_path(name)


def test_an_unknown_tool_name_lists_the_known_ones() -> None:
    with pytest.raises(ToolError, match=r"known tools: .*kube-apiserver"):
        toolchain.tool_path("kubectl")


def test_a_tool_is_found_once_its_binary_and_stamp_are_in_place(empty_cache: Path) -> None:
    pins = load_pins()
    recipe = recipe_for("etcd", pins)
    binary = recipe.binary("etcd")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    with pytest.raises(ToolError):
        toolchain.tool_path("etcd")  # no stamp yet: an interrupted build is not a build
    recipe.finish(None)
    assert toolchain.tool_path("etcd") == binary


def test_a_stamp_for_another_version_does_not_count_as_built(empty_cache: Path) -> None:
    recipe = recipe_for("etcd", load_pins())
    binary = recipe.binary("etcd")
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    cache.write_stamp(binary.parent, cache.Stamp(name="etcd", version="0.0.1", source="x"))
    assert not recipe.is_built()


def test_build_selection_follows_build_order_accepts_tool_or_recipe_names_and_adds_needs() -> None:
    pins = load_pins()
    keys = [r.key for r in select(["kube-scheduler", "pulumi", "etcd"], pins)]
    assert keys == ["etcd", "pulumi", "kube"]
    assert [r.key for r in select(["pulumi-resource-kubernetes"], pins)] == ["pulumi", "kubernetes-provider"]
    assert [r.key for r in select([], pins)] == [
        "etcd",
        "kwok",
        "pulumi",
        "language-python",
        "kubernetes-provider",
        "random-provider",
        "kube",
        "pause",
        "probe",
        "crictl",
        "coredns",
        "traefik",
    ]
    assert [r.key for r in select(["kubelet", "traefik"], pins)] == ["kube", "traefik"]


def test_pulumi_env_puts_the_tool_bin_then_the_venv_first_and_disables_network_side_effects(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    result = env.pulumi_env()
    path = result["PATH"].split(":")
    assert path[:2] == [str(empty_cache / "bin"), str(env.venv_bin())]
    assert result["PULUMI_HOME"] == str(empty_cache / "pulumi-home")
    assert result["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert result["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert result["PULUMI_CONFIG_PASSPHRASE"] == env.DEV_PASSPHRASE


@pytest.mark.parametrize("variable", ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"])
def test_a_configured_passphrase_is_never_overridden(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.setenv(variable, "")
    assert "PULUMI_CONFIG_PASSPHRASE" not in env.pulumi_env()


def test_shell_exports_are_quoted_export_lines(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "it's set")
    lines = env.shell_exports().splitlines()
    assert all(line.startswith("export ") for line in lines)
    assert any(line.startswith("export PULUMI_HOME=") for line in lines)
