"""Placeholders: which text is one, what fills it, and the error for an unknown or unavailable name."""

from __future__ import annotations

from typing import Any

import pytest

from prenv import placeholders, stackconfig
from prenv.errors import ConfigError

VALUES = {"pr": "7", "sha": "abc1234", "host": "web-7.example.com", "namespace": "pr-7"}


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        ("{pr}", "7"),
        ("web-{pr}.{sha}", "web-7.abc1234"),
        ("${HOME} and $(PORT)", "${HOME} and $(PORT)"),
        ("{{ .Values.x }} {{pr}}", "{{ .Values.x }} {{pr}}"),
        ("jsonpath={.status.loadBalancer}", "jsonpath={.status.loadBalancer}"),
        ('{"a": 1}', '{"a": 1}'),
        ("{ pr }", "{ pr }"),
    ],
    ids=["whole", "inside", "shell", "go-template", "jsonpath", "json", "spaced"],
)
def test_only_a_plain_name_in_single_braces_is_a_placeholder(text: str, filled: str) -> None:
    assert placeholders.fill(text, VALUES, "k") == filled


def test_nested_values_are_filled_and_the_input_is_not_changed() -> None:
    value: dict[str, Any] = {"a": ["{pr}", {"b": "{host}"}], "n": 3, "t": True}
    assert placeholders.fill(value, VALUES, "k") == {"a": ["7", {"b": "web-7.example.com"}], "n": 3, "t": True}
    assert value["a"][0] == "{pr}"


def test_an_unknown_placeholder_names_itself_and_where_it_was() -> None:
    with pytest.raises(ConfigError) as e:
        placeholders.fill({"image": {"tag": "{branch}"}}, VALUES, "prenv:app.values")
    assert e.value.key == "prenv:app.values.image.tag"
    assert "unknown placeholder {branch}" in str(e.value)


def test_a_documented_placeholder_this_stack_lacks_says_so() -> None:
    with pytest.raises(ConfigError) as e:
        placeholders.fill(["{databaseSecret}"], VALUES, "prenv:app.files[0]")
    assert e.value.key == "prenv:app.files[0][0]"
    assert "{databaseSecret} is not available" in str(e.value)


def test_branch_title_and_author_have_no_placeholder() -> None:
    assert not {"branch", "title", "author"} & set(placeholders.NAMES)


BASE: dict[str, Any] = {
    "baseDomain": "preview.example.com",
    "image": {"repository": "registry.example.com/acme/shop"},
    "pr": 7,
    "sha": "a" * 40,
}


@pytest.mark.parametrize(
    ("app", "key", "message"),
    [
        ({"kind": "helm"}, "prenv:app", "app.chart is required when app.kind is helm"),
        ({"kind": "kustomize"}, "prenv:app", "app.directory is required"),
        ({"kind": "manifests"}, "prenv:app", "app.files is required"),
        ({"kind": "kustomize", "directory": "d", "files": ["x"]}, "prenv:app", "app.files is only for app.kind"),
        ({"kind": "helm", "chart": "c", "repo": "https://charts.example.com"}, "prenv:app", "app.version is required"),
        ({"kind": "helm", "chart": "c", "repo": "charts.example.com", "version": "1"}, "prenv:app.repo", "URL"),
        ({"kind": "helm", "chart": "c", "values": {"a": ["{sah}"]}}, "prenv:app.values", "{sah}"),
        ({"kind": "helm", "chart": "c", "allowClusterScoped": ["clusterrole"]}, "prenv:app.allowClusterScoped", ""),
        ({"kind": "helm", "chart": "c", "service": "Web_1"}, "prenv:app.service", "DNS label"),
        ({"kind": "helm", "chart": "c", "port": 70000}, "prenv:app.port", "port"),
        ({"kind": "services", "service": "web"}, "prenv:app", "are for helm, kustomize and manifests"),
        ({"kind": "jsonnet"}, "prenv:app.kind", ""),
    ],
    ids=[
        "helm-no-chart",
        "kustomize-no-dir",
        "manifests-no-files",
        "key-of-another-kind",
        "repo-without-version",
        "repo-not-url",
        "unknown-placeholder",
        "allow-list-form",
        "service-not-label",
        "port-range",
        "service-on-builtin",
        "unknown-kind",
    ],
)
def test_bad_app_config_is_a_config_error_naming_the_key(app: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        stackconfig.load({**BASE, "app": app})
    assert e.value.key == key
    assert message in str(e.value)


def test_a_bring_your_own_app_needs_no_services_and_names_its_host() -> None:
    cfg = stackconfig.load({**BASE, "app": {"kind": "kustomize", "directory": "k", "service": "api"}})
    assert cfg.template.services == []
    assert cfg.host == "api-7.preview.example.com"
    named = stackconfig.load({**BASE, "app": {"kind": "manifests", "files": ["a.yaml"], "host": "shop"}})
    assert named.host == "shop-7.preview.example.com"


def test_the_built_in_shape_still_needs_its_services() -> None:
    with pytest.raises(ConfigError) as e:
        stackconfig.load(BASE)
    assert e.value.key == "prenv:services"
