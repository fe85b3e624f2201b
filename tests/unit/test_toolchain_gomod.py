"""Wrapper go.mod generation: what is repeated from upstream go.mod files and what is remapped."""

from __future__ import annotations

from prenv.toolchain.goenv import parse_go_mod
from prenv.toolchain.recipes.kube import staging_version, version_flags, wrapper_go_mod
from prenv.toolchain.recipes.pulumi_cli import wrapper_go_mod as pulumi_wrapper

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
