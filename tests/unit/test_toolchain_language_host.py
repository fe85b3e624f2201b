"""The language host recipe builds exactly the checked-in sources at the SDK pin, never a rewritten go.mod."""

from __future__ import annotations

import pytest

from prenv.errors import ToolError
from prenv.toolchain.recipes.language_host import check_sdk_requirement, source_files
from prenv.toolchain.versions import load_pins


def test_the_hosts_go_mod_requires_the_pulumi_pin() -> None:
    check_sdk_requirement(load_pins().pulumi)


def test_another_pin_is_an_error_naming_both_versions_and_the_fix() -> None:
    expected = r"requires github.com/pulumi/pulumi/sdk/v3 v3\.\d+\.\d+ but .*pulumi==9\.9\.9.*go get"
    with pytest.raises(ToolError, match=expected):
        check_sdk_requirement("9.9.9")


def test_the_digest_covers_every_go_file_but_not_the_tests() -> None:
    names = source_files()
    assert names[:2] == ["go.mod", "go.sum"]
    assert "main.go" in names and "plugins.go" in names
    assert not [n for n in names if n.endswith("_test.go")]
