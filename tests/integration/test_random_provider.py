"""Our bridged random plugin is the one the pinned pulumi-random SDK expects, and it works offline.

Compatibility is proven the way the kubernetes provider's was: the resource tokens the PyPI SDK registers
(the ``_utilities.register`` tables in ``pulumi_random/__init__.py``) equal the resources of the schema
the installed plugin serves, and for each resource the SDK's input and output property names equal the
schema's. Then a RandomPassword is created, kept secret, left alone by a second update and destroyed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pulumi
import pytest
from pulumi import automation as auto

from tests.fixtures.toolchain import inline_stack

pytestmark = pytest.mark.integration

PROJECT = "random-check"


def sdk_dir() -> Path:
    import pulumi_random

    return Path(pulumi_random.__file__).parent


def served_schema(pulumi_env: dict[str, str]) -> dict[str, object]:
    """The schema the installed plugin at the SDK's version serves (through the engine, as a program would)."""
    version = json.loads((sdk_dir() / "pulumi-plugin.json").read_text(encoding="utf-8"))["version"]
    proc = subprocess.run(
        ["pulumi", "package", "get-schema", f"random@{version}"],
        env={**os.environ, **pulumi_env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    schema: dict[str, object] = json.loads(proc.stdout)
    return schema


def sdk_registered_tokens() -> set[str]:
    """The resource type tokens pulumi_random registers at import (its resource_modules table)."""
    tree = ast.parse((sdk_dir() / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register":
            for kw in node.keywords:
                if kw.arg == "resource_modules" and isinstance(kw.value, ast.Constant):
                    modules = json.loads(kw.value.value)
                    return {token for m in modules for token in m["classes"]}
    raise AssertionError("pulumi_random/__init__.py registers no resource modules")


def sdk_property_names(resource_class: str) -> tuple[set[str], set[str]]:
    """(inputs, outputs) of one SDK resource: the wire names of the getters of ``<X>Args`` and of ``<X>``."""
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", resource_class).lower()
    tree = ast.parse((sdk_dir() / f"{module}.py").read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        getters = set()
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for dec in fn.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "getter":
                    getters.add(next((str(k.value.value) for k in dec.keywords if k.arg == "name"), fn.name))  # type: ignore[attr-defined]
                elif isinstance(dec, ast.Attribute) and dec.attr == "getter":
                    getters.add(fn.name)
        names[cls.name] = getters
    return names[f"{resource_class}Args"], names[resource_class]


def test_the_sdk_registers_exactly_the_resources_of_the_served_schema(pulumi_env: dict[str, str]) -> None:
    schema = served_schema(pulumi_env)
    resources = schema["resources"]
    assert isinstance(resources, dict)
    assert sdk_registered_tokens() == set(resources)
    assert "random:index/randomPassword:RandomPassword" in resources


def test_each_resource_has_the_sdks_input_and_output_properties(pulumi_env: dict[str, str]) -> None:
    resources = served_schema(pulumi_env)["resources"]
    assert isinstance(resources, dict)
    for token, spec in sorted(resources.items()):
        inputs, outputs = sdk_property_names(token.rsplit(":", 1)[1])
        assert inputs == set(spec.get("inputProperties", {})), token
        assert outputs == set(spec.get("properties", {})), token


def test_a_random_password_is_secret_stable_and_destroyed_offline(
    tmp_path: Path, pulumi_env: dict[str, str], pulumi_command: auto.PulumiCommand
) -> None:
    import pulumi_random

    def program() -> None:
        password = pulumi_random.RandomPassword("pw", length=24, special=False)
        pulumi.export("password", password.result)

    stack = inline_stack(tmp_path, PROJECT, program, pulumi_command=pulumi_command, pulumi_env=pulumi_env)
    output: list[str] = []
    up = stack.up(on_output=output.append)
    password = up.outputs["password"]
    assert password.secret is True
    assert isinstance(password.value, str) and re.fullmatch(r"[A-Za-z0-9]{24}", password.value)

    again = stack.up(on_output=output.append)
    assert set((again.summary.resource_changes or {}).keys()) == {"same"}
    assert again.outputs["password"].value == password.value

    assert stack.destroy(on_output=output.append).summary.result == "succeeded"
    stack.workspace.remove_stack("dev")
    assert not [line for line in output if "download" in line.lower()]
