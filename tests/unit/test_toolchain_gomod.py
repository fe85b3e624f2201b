"""Wrapper go.mod generation and version flags: what is repeated from upstream go.mod files, what is remapped."""

from __future__ import annotations

import pytest

from prenv import toolchain
from prenv.toolchain.goenv import ldflags, parse_go_mod
from prenv.toolchain.recipes import coredns, kube, recipe_for, traefik
from prenv.toolchain.recipes.kube import staging_version, version_flags, wrapper_go_mod
from prenv.toolchain.recipes.pulumi_cli import wrapper_go_mod as pulumi_wrapper
from prenv.toolchain.versions import load_pins

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tgithub.com/spf13/cobra v1.8.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0 // indirect
)

require k8s.io/kms v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kms => ./staging/src/k8s.io/kms
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)

replace github.com/old/thing v1.0.0 => github.com/new/thing v1.0.1
"""


def test_go_mod_blocks_single_lines_and_comments_are_parsed() -> None:
    mod = parse_go_mod(KUBERNETES_GO_MOD)
    assert mod.go == "1.24.0"
    assert mod.godebug == ("default=go1.24",)
    assert mod.requires == {
        "github.com/spf13/cobra": "v1.8.1",
        "k8s.io/api": "v0.0.0",
        "k8s.io/client-go": "v0.0.0",
        "k8s.io/kms": "v0.0.0",
    }
    assert mod.non_local_replaces() == {"github.com/old/thing v1.0.0": "github.com/new/thing v1.0.1"}
    assert set(mod.local_replaces()) == {"k8s.io/api", "k8s.io/client-go", "k8s.io/kms", "k8s.io/sample-controller"}


def test_kube_wrapper_maps_each_required_staging_module_to_the_published_release() -> None:
    text = wrapper_go_mod("v1.33.13", parse_go_mod(KUBERNETES_GO_MOD), "1.26.8")
    assert "\tk8s.io/kubernetes v1.33.13\n" in text
    for module in ("k8s.io/api", "k8s.io/client-go", "k8s.io/kms"):
        assert f"\t{module} => {module} v0.33.13\n" in text
    assert "sample-controller" not in text  # replaced upstream but never required
    assert "github.com/old/thing v1.0.0 => github.com/new/thing v1.0.1" in text
    assert "godebug default=go1.24" in text


def test_staging_modules_are_published_as_v0_minor_patch() -> None:
    assert staging_version("v1.33.13") == "v0.33.13"


def test_kube_version_is_stamped_into_component_base_and_client_go() -> None:
    flags = dict(version_flags("1.33.13", "abc123"))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert flags[f"{pkg}.gitVersion"] == "v1.33.13"
        assert flags[f"{pkg}.gitMajor"] == "1"
        assert flags[f"{pkg}.gitMinor"] == "33"
        assert flags[f"{pkg}.gitCommit"] == "abc123"


def test_pulumi_wrapper_requires_pkg_and_sdk_together_and_drops_local_replaces() -> None:
    pkg = parse_go_mod(
        "module github.com/pulumi/pulumi/pkg/v3\n\ngo 1.26.6\n\n"
        "replace github.com/pulumi/pulumi/sdk/v3 => ../sdk\n\n"
        "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n"
    )
    sdk = parse_go_mod(
        "module github.com/pulumi/pulumi/sdk/v3\n\ngo 1.26.6\n\n"
        "replace golang.org/x/text => golang.org/x/text v0.39.0\n"
    )
    text = pulumi_wrapper("v3.259.0", pkg, sdk, "1.26.8")
    assert "\tgithub.com/pulumi/pulumi/pkg/v3 v3.259.0\n" in text
    assert "\tgithub.com/pulumi/pulumi/sdk/v3 v3.259.0\n" in text
    assert "../sdk" not in text
    assert "github.com/atotto/clipboard => github.com/tgummerer/clipboard" in text
    assert "golang.org/x/text => golang.org/x/text v0.39.0" in text


# The tail of github.com/traefik/traefik/v3@v3.6.25's go.mod, as served.
TRAEFIK_GO_MOD = """module github.com/traefik/traefik/v3

go 1.26.0

require (
\tgithub.com/gorilla/mux v1.8.1
\tgithub.com/abbot/go-http-auth v0.0.0-00010101000000-000000000000
)

// Containous forks
replace (
\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
)

// ambiguous import: found package github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http
exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
"""

TRAEFIK_LINES = (
    "\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e\n",
    "\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59\n",
    "\tgithub.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible\n",
)


def test_exclude_lines_are_read_single_and_in_blocks() -> None:
    mod = parse_go_mod("module m\n\nexclude a.example/x v1.0.0\nexclude (\n\tb.example/y  v2.0.0+incompatible\n)\n")
    assert mod.excludes == ("a.example/x v1.0.0", "b.example/y v2.0.0+incompatible")


def test_traefik_wrapper_repeats_upstreams_fork_replaces_and_exclude_exactly() -> None:
    text = traefik.wrapper_go_mod("v3.6.25", parse_go_mod(TRAEFIK_GO_MOD), "1.26.8")
    assert text.startswith("module prenv.local/traefik\n\ngo 1.26.8\n")
    assert "\tgithub.com/traefik/traefik/v3 v3.6.25\n" in text
    for line in TRAEFIK_LINES:
        assert line in text
    assert "exclude (\n\tgithub.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible\n)" in text
    # What go reads back is what upstream declared: nothing lost, nothing added.
    wrapper, upstream = parse_go_mod(text), parse_go_mod(TRAEFIK_GO_MOD)
    assert wrapper.replaces == upstream.replaces
    assert wrapper.excludes == upstream.excludes
    assert wrapper.requires == {"github.com/traefik/traefik/v3": "v3.6.25"}


def test_traefik_wrapper_drops_replaces_pointing_at_directories() -> None:
    upstream = parse_go_mod(TRAEFIK_GO_MOD + "replace github.com/traefik/traefik/v3/webui => ./webui\n")
    assert "./webui" not in traefik.wrapper_go_mod("v3.6.25", upstream, "1.26.8")


def test_traefik_reports_the_release_it_was_built_from_not_dev() -> None:
    assert traefik.version_flags("v3.6.25") == [("github.com/traefik/traefik/v3/pkg/version.Version", "v3.6.25")]
    assert ldflags(*traefik.version_flags("v3.6.25")) == (
        "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=v3.6.25"
    )


def test_coredns_wrapper_only_requires_the_release() -> None:
    mod = parse_go_mod(coredns.wrapper_go_mod("v1.14.7", "1.26.8"))
    assert mod.requires == {"github.com/coredns/coredns": "v1.14.7"}
    assert mod.replaces == {} and mod.excludes == ()


@pytest.mark.parametrize(
    ("commit", "expected"),
    [("1db4568df6aaacda6ebbce87717156bd855f8103", "1db4568df6aaacda6ebbce87717156bd855f8103"), ("", "v1.14.7")],
    ids=["commit-from-proxy", "tag-when-proxy-names-no-commit"],
)
def test_coredns_commit_is_the_origin_hash_or_else_the_tag(commit: str, expected: str) -> None:
    assert coredns.version_flags("v1.14.7", commit) == [("github.com/coredns/coredns/coremain.GitCommit", expected)]


def test_kubelet_and_kube_proxy_come_from_the_same_build_as_the_control_plane() -> None:
    recipe = recipe_for("kubelet", load_pins())
    assert recipe is not None and recipe.key == "kube"
    assert recipe_for("kube-proxy", load_pins()).key == "kube"
    assert recipe.tool_names() == kube.COMMANDS
    assert {"kube-apiserver", "kubelet", "kube-proxy"} <= set(kube.COMMANDS)
    assert {t.version for t in recipe.tools()} == {load_pins().kubernetes}


def test_every_public_tool_name_has_a_recipe() -> None:
    pins = load_pins()
    for name in toolchain.TOOLS:
        assert name in recipe_for(name, pins).tool_names()
