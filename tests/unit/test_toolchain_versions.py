"""Version pins: read from requirements.txt, combined with the upstream constant, mismatches named."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from prenv.errors import ToolError
from prenv.toolchain import versions
from prenv.toolchain.versions import (
    Pins,
    check_installed_sdks,
    check_plugin_version,
    load_pins,
    provider_pseudo_version,
    read_requirement_pins,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_pins_are_read_from_name_equals_version_lines_ignoring_comments_and_extras(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# runtime\npulumi==3.1.0  # engine follows this\nPulumi_Kubernetes == 4.2.0\n"
        "psycopg[binary]==3.3.9\nhttpx>=0.28\n",
    )
    assert read_requirement_pins(path) == {"pulumi": "3.1.0", "pulumi-kubernetes": "4.2.0", "psycopg": "3.3.9"}


def test_load_pins_combines_sdk_pins_with_the_upstream_constant(tmp_path: Path) -> None:
    pins = load_pins(write(tmp_path, "pulumi==3.1.0\npulumi-kubernetes==4.2.0\n"))
    assert (pins.pulumi, pins.pulumi_kubernetes) == ("3.1.0", "4.2.0")
    assert (pins.kubernetes, pins.etcd, pins.kwok) == (
        versions.UPSTREAM["kubernetes"],
        versions.UPSTREAM["etcd"],
        versions.UPSTREAM["kwok"],
    )


def test_a_missing_sdk_pin_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"must pin pulumi-kubernetes==<version>"):
        load_pins(write(tmp_path, "pulumi==3.1.0\n"))


def test_an_unreadable_requirements_file_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="cannot read"):
        load_pins(tmp_path / "absent.txt")


def test_the_project_requirements_pin_both_sdks() -> None:
    pins = load_pins()
    assert pins.pulumi and pins.pulumi_kubernetes


@pytest.mark.parametrize(
    ("pin", "engine"),
    [("3.260.0", "3.259.0"), ("3.259.0", "3.259.0"), ("3.300.0", "3.300.0")],
    ids=["unserved-source-falls-back", "served-pin-is-used", "unknown-pin-is-used"],
)
def test_engine_version_is_the_pin_unless_its_source_is_known_unserved(pin: str, engine: str) -> None:
    assert Pins(pin, "4.25.0", "1.33.13", "3.5.35", "0.8.0").engine == engine


def test_a_plugin_built_at_another_version_than_its_sdk_pin_is_an_error_naming_both() -> None:
    with pytest.raises(ToolError) as e:
        check_plugin_version("pulumi-resource-kubernetes", "v4.24.0", "pulumi-kubernetes", "4.25.0")
    message = str(e.value)
    assert "pulumi-resource-kubernetes is 4.24.0" in message
    assert "pulumi-kubernetes==4.25.0" in message
    assert "make tools" in message


def test_a_plugin_matching_its_pin_passes_with_or_without_a_v_prefix() -> None:
    check_plugin_version("pulumi-resource-kubernetes", "v4.25.0", "pulumi-kubernetes", "4.25.0")


def test_an_unknown_provider_version_says_where_to_add_its_pseudo_version() -> None:
    with pytest.raises(ToolError, match="KUBERNETES_PROVIDER_PSEUDO_VERSIONS"):
        provider_pseudo_version("9.9.9")
    assert provider_pseudo_version("4.25.0").startswith("v4.0.0-")


def test_installed_sdks_differing_from_their_pins_are_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"pulumi": "3.260.0", "pulumi-kubernetes": "4.24.0"}
    monkeypatch.setattr(metadata, "version", installed.__getitem__)
    problems = check_installed_sdks(Pins("3.260.0", "4.25.0", "1.33.13", "3.5.35", "0.8.0"))
    assert problems == ["pulumi-kubernetes 4.24.0 is installed but requirements.txt pins 4.25.0; run `make venv`"]
