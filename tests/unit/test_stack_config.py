"""Validation of the stack config: every bad value is rejected before any resource, naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prenv import naming, stackconfig, template
from prenv.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHA = "a" * 40


def valid(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/app"},
        "services": [{"name": "web", "public": True}],
        "pr": 7,
        "sha": SHA,
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"pr": "seven"}, "prenv:pr"),
        ({"pr": 0}, "prenv:pr"),
        ({"pr": -3}, "prenv:pr"),
        ({"sha": "not-a-sha"}, "prenv:sha"),
        ({"baseDomain": "Not_A_Domain"}, "prenv:baseDomain"),
        ({"baseDomain": "localhost"}, "prenv:baseDomain"),
        ({"image": {"repository": "Registry/App"}}, "prenv:image.repository"),
        ({"imageTag": "bad tag!"}, "prenv:imageTag"),
        ({"quota": {"cpu": "two"}}, "prenv:quota.cpu"),
        ({"limits": {"memory": "512 MB"}}, "prenv:limits.memory"),
        ({"tls": {"mode": "letsencrypt"}}, "prenv:tls.mode"),
        ({"colour": "blue"}, "prenv:colour"),
        ({"services": [{"name": "web", "public": True, "port": 0}]}, "prenv:services[0].port"),
        ({"services": [{"name": "Web_1", "public": True}]}, "prenv:services[0].name"),
        ({"services": [{"name": "web", "public": True, "env": {"DATABASE_URL": "x"}}]}, "prenv:services[0].env"),
        ({"ttl": "2 days"}, "prenv:ttl"),
        ({"namespacePrefix": "UPPER-"}, "prenv:namespacePrefix"),
        ({"database": {"namePrefix": "pr-"}}, "prenv:database.namePrefix"),
        ({"database": {"template": "seed; DROP TABLE x"}}, "prenv:database.template"),
        ({"secrets": {"source": "aws-secrets-manager", "prefix": "prod/app/"}}, "prenv:secrets"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_are_rejected_naming_the_key(over: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        stackconfig.load(valid(**over))
    assert str(e.value).startswith(key), str(e.value)


def test_a_missing_required_key_is_named() -> None:
    data = valid()
    del data["image"]
    with pytest.raises(ConfigError, match=r"^prenv:image: is required"):
        stackconfig.load(data)


def test_names_derive_from_the_pr_number_only() -> None:
    cfg = stackconfig.load(valid(branch="feature/$(rm -rf /)", author="eve\n", namespacePrefix="preview-"))
    assert cfg.stack == "pr-7"
    assert cfg.namespace == "preview-pr-7"
    assert cfg.host == "web-7.preview.example.com"
    assert cfg.database_name == "pr_7"
    assert cfg.image_tag == "pr-7"


def test_the_shipped_template_is_valid() -> None:
    raw = template.read_template_file(ROOT)
    t = stackconfig.load_template(raw)
    assert t.public_service.name == "web"


def test_config_hash_changes_with_the_template_and_the_image_tag_but_not_otherwise() -> None:
    t1 = stackconfig.load_template(valid())
    t2 = stackconfig.load_template(valid(quota={"pods": 30}))
    assert stackconfig.template_hash(t1) == stackconfig.template_hash(stackconfig.load_template(valid()))
    assert stackconfig.template_hash(t1) != stackconfig.template_hash(t2)
    assert stackconfig.template_hash(t1) != stackconfig.template_hash(t1, "sha-1234567")


def test_stack_values_override_template_keys_and_json_strings_are_decoded() -> None:
    merged = template.effective({"ttl": "48h", "quota": {"pods": 20}}, {"ttl": "72h", "quota": '{"pods": 5}'})
    assert merged == {"ttl": "72h", "quota": {"pods": 5}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("feature/login", "feature-login"),
        ("a" * 100, "a" * 63),
        ("; DROP TABLE users; --", "DROP-TABLE-users"),
        ("ünïcødé", "n-c-d"),
        ("", ""),
        ("---", ""),
    ],
)
def test_label_values_are_sanitised(text: str, expected: str) -> None:
    assert naming.label_value(text) == expected


@pytest.mark.parametrize("stack", ["pr-7", "acme/prenv/pr-7"])
def test_pr_number_is_read_back_from_stack_names(stack: str) -> None:
    assert naming.pr_of_stack(stack) == 7


@pytest.mark.parametrize("stack", ["preview", "shared", "pr-07", "pr-", "pr-7x", "pr--1"])
def test_other_stack_names_are_not_pr_stacks(stack: str) -> None:
    assert naming.pr_of_stack(stack) is None


def test_preview_program_takes_the_pr_number_from_the_stack_name() -> None:
    from stacks import preview

    cfg = preview.load(ROOT, "pr-12", {"sha": SHA})
    assert cfg.pr.pr == 12
    assert cfg.namespace == "pr-12"


def test_preview_program_rejects_a_pr_value_that_disagrees_with_the_stack() -> None:
    from stacks import preview

    with pytest.raises(ConfigError, match=r"^prenv:pr"):
        preview.load(ROOT, "pr-12", {"sha": SHA, "pr": "13"})
