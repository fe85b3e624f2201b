"""How we drive kwokctl: command line, environment, tool discovery and reading its record back."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
import yaml

from prenv.cluster import bootstrap, kwokctl
from prenv.cluster.layout import ClusterLayout
from prenv.errors import ToolError

BINARIES = ("kwokctl", "kwok", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    d = tmp_path / "tools"
    for name in BINARIES:
        _script(d / name, f'echo "{name} version v1.33.5"')
    _script(d / "kube-apiserver", 'echo "Kubernetes v1.33.5"')
    (d / "stage-fast.yaml").write_text("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: a}\n")
    (d / "unrelated.yaml").write_text("kind: ConfigMap\n")
    return d


def _tools(bindir: Path) -> kwokctl.Toolset:
    return kwokctl.resolve_toolset(lambda name: bindir / name)


def test_the_toolset_comes_from_the_toolchain_with_version_and_stage_files(bindir: Path) -> None:
    tools = _tools(bindir)
    assert tools.kube_apiserver == bindir / "kube-apiserver"
    assert tools.kube_version == "v1.33.5"
    assert tools.stage_configs == (bindir / "stage-fast.yaml",)


def test_a_missing_tool_is_a_tool_error_naming_it(bindir: Path) -> None:
    def tool_path(name: str) -> Path:
        if name == "kube-scheduler":
            raise ToolError("kube-scheduler: not built; run `make tools`")
        return bindir / name

    with pytest.raises(ToolError, match="kube-scheduler"):
        kwokctl.resolve_toolset(tool_path)


@pytest.mark.parametrize(
    ("output", "version"),
    [("Kubernetes v1.33.5", "v1.33.5"), ("Kubernetes v1.34.1-dirty", "v1.34.1"), ("etcd Version: 3.5.21", None)],
    ids=["release", "suffix", "no-v-prefix"],
)
def test_binary_version_is_read_from_the_binary(tmp_path: Path, output: str, version: str | None) -> None:
    binary = _script(tmp_path / "bin", f'echo "{output}"')
    if version is None:
        with pytest.raises(ToolError):
            kwokctl.binary_version(binary)
    else:
        assert kwokctl.binary_version(binary) == version


def test_an_unstamped_build_is_refused_because_kwokctl_would_pick_ancient_flags(tmp_path: Path) -> None:
    binary = _script(tmp_path / "kube-apiserver", 'echo "Kubernetes v0.0.0-master+$Format:%H$"')
    with pytest.raises(ToolError, match="no usable version"):
        kwokctl.binary_version(binary)


def test_create_gives_kwokctl_every_binary_and_our_work_dir_so_it_downloads_nothing(
    bindir: Path, tmp_path: Path
) -> None:
    layout = ClusterLayout.of("gw0", tmp_path / "state")
    tools = _tools(bindir)
    command = kwokctl.create_command(layout, tools)
    env = command.env
    assert env["KWOK_WORKDIR"] == str(layout.root)
    assert env["KWOK_KUBE_VERSION"] == "v1.33.5"
    for variable, binary in [
        ("KWOK_KUBE_APISERVER_BINARY", "kube-apiserver"),
        ("KWOK_KUBE_CONTROLLER_MANAGER_BINARY", "kube-controller-manager"),
        ("KWOK_KUBE_SCHEDULER_BINARY", "kube-scheduler"),
        ("KWOK_ETCD_BINARY", "etcd"),
        ("KWOK_CONTROLLER_BINARY", "kwok"),
    ]:
        assert env[variable] == str(bindir / binary)
    assert env["KWOK_KUBECTL_BINARY"] == str(tools.kubectl)
    assert "KUBECONFIG" not in env


def _component_args(component: str) -> dict[str, str]:
    document = yaml.safe_load(kwokctl.options_document({"kubeApiserverPort": 1}))
    patches = [p for p in document["componentsPatches"] if p["name"] == component]
    return {a["key"]: a["value"] for p in patches for a in p["extraArgs"]}


def test_create_gives_the_apiserver_a_service_range_for_thousands_of_environments() -> None:
    assert _component_args("kube-apiserver")["service-cluster-ip-range"] == "10.96.0.0/16"


def test_create_turns_on_admission_and_keeps_away_from_the_users_kubeconfig(bindir: Path, tmp_path: Path) -> None:
    layout = ClusterLayout.of("gw0", tmp_path)
    command = kwokctl.create_command(layout, _tools(bindir))
    argv = list(command.argv)
    assert "--kube-admission=true" in argv
    assert "--kube-authorization=true" in argv
    assert argv[argv.index("--kubeconfig") + 1] == ""
    assert argv[argv.index("--runtime") + 1] == "binary"
    assert argv[argv.index("--name") + 1] == "gw0"
    configs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--config"]
    # Ours first (it replaces kwokctl's default ~/.kwok/kwok.yaml), then the stages.
    assert configs == [str(layout.kwokctl_options), str(bindir / "stage-fast.yaml")]


def test_the_apiserver_presents_kwokctls_admin_certificate_to_kubelets_so_logs_and_exec_work(tmp_path: Path) -> None:
    layout = ClusterLayout.of("gw0", tmp_path)
    document = yaml.safe_load(kwokctl.options_document({"kubeApiserverPort": 1}, layout.pki_dir))
    args = {
        a["key"]: a["value"]
        for p in document["componentsPatches"]
        if p["name"] == "kube-apiserver"
        for a in p["extraArgs"]
    }
    assert args["kubelet-client-certificate"] == str(layout.kwok_cluster_dir / "pki" / "admin.crt")
    assert args["kubelet-client-key"] == str(layout.kwok_cluster_dir / "pki" / "admin.key")
    assert "kubelet-client-certificate" not in _component_args("kube-apiserver")


def test_the_options_fix_every_port_and_bind_to_loopback_only() -> None:
    ports = dict(zip(kwokctl.PORT_OPTIONS, range(41001, 41007), strict=True))
    document = yaml.safe_load(kwokctl.options_document(ports))
    assert document["kind"] == "KwokctlConfiguration"
    assert document["options"] == {"bindAddress": "127.0.0.1", **ports}
    assert {p["name"] for p in document["componentsPatches"]} == {"kube-apiserver", "kwok-controller"}
    with pytest.raises(ValueError, match="unknown"):
        kwokctl.options_document({"dashboardPort": 1})


def test_the_record_gives_ports_and_pidfiles_of_every_component(tmp_path: Path) -> None:
    layout = ClusterLayout.of("gw0", tmp_path)
    layout.kwok_config.parent.mkdir(parents=True)
    bin_dir = layout.kwok_cluster_dir / "bin"
    layout.kwok_config.write_text(
        f"""
kind: KwokctlConfiguration
apiVersion: config.kwok.x-k8s.io/v1alpha1
options:
  kubeApiserverPort: 41001
  etcdPort: 41002
  etcdPeerPort: 41003
  kwokControllerPort: 0
components:
- name: etcd
  binary: {bin_dir}/etcd
- name: kwok-controller
  binary: {bin_dir}/kwok-controller
---
kind: Stage
apiVersion: kwok.x-k8s.io/v1alpha1
"""
    )
    record = kwokctl.read_record(layout)
    assert record is not None
    assert dict(record.ports) == {"kubeApiserverPort": 41001, "etcdPort": 41002, "etcdPeerPort": 41003}
    assert [(c.name, c.pidfile) for c in record.components] == [
        ("etcd", layout.pids_dir / "etcd.pid"),
        ("kwok-controller", layout.pids_dir / "kwok-controller.pid"),
    ]


def test_no_record_means_the_cluster_was_never_created(tmp_path: Path) -> None:
    assert kwokctl.read_record(ClusterLayout.of("gw0", tmp_path)) is None


def test_kwok_0_8_without_stage_files_is_a_tool_error(bindir: Path) -> None:
    _script(bindir / "kwok", 'echo "kwok version v0.8.0 go1.24"')
    (bindir / "stage-fast.yaml").unlink()
    with pytest.raises(ToolError, match="Stage"):
        _tools(bindir)


def test_kwok_0_7_brings_its_own_stages(bindir: Path) -> None:
    _script(bindir / "kwok", 'echo "kwok version v0.7.0 go1.24"')
    (bindir / "stage-fast.yaml").unlink()
    assert _tools(bindir).stage_configs == ()


def test_the_fast_stage_set_is_followed_through_its_kustomizations(tmp_path: Path) -> None:
    stages = tmp_path / "stages"
    for path, body in {
        "fast/kustomization.yaml": "resources:\n- ../node/fast\n- ../pod/fast\n",
        "node/fast/kustomization.yaml": "resources:\n- node-initialize.yaml\n",
        "node/fast/node-initialize.yaml": "kind: Stage\n",
        "pod/fast/kustomization.yaml": "resources:\n- pod-ready.yaml\n- pod-delete.yaml\n",
        "pod/fast/pod-ready.yaml": "kind: Stage\n",
        "pod/fast/pod-delete.yaml": "kind: Stage\n",
        "pod/chaos/pod-failed.yaml": "kind: Stage\n",
    }.items():
        (stages / path).parent.mkdir(parents=True, exist_ok=True)
        (stages / path).write_text(body)
    assert [p.relative_to(stages.resolve()).as_posix() for p in kwokctl.stage_configs(tmp_path)] == [
        "node/fast/node-initialize.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-delete.yaml",
    ]


def test_a_kustomization_naming_a_missing_file_is_a_tool_error(tmp_path: Path) -> None:
    (tmp_path / "stages" / "fast").mkdir(parents=True)
    (tmp_path / "stages" / "fast" / "kustomization.yaml").write_text("resources:\n- gone.yaml\n")
    with pytest.raises(ToolError, match="missing"):
        kwokctl.stage_configs(tmp_path)


def test_kwok_manages_only_its_annotated_fake_nodes() -> None:
    """kwokctl passes kwok --manage-all-nodes=true; its components' patches come after it, and the last flag wins."""
    args = _component_args("kwok-controller")
    assert args["manage-all-nodes"] == "false"
    assert args["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"


def test_the_apiserver_reaches_kubelets_by_internal_ip_only() -> None:
    assert _component_args("kube-apiserver")["kubelet-preferred-address-types"] == "InternalIP"


def test_the_fake_nodes_carry_the_annotation_kwok_selects_and_pod_cidrs_in_the_blackholed_range() -> None:
    key, value = kwokctl.FAKE_NODE_ANNOTATION.split("=")
    spec = bootstrap.NodeSpec(count=3)
    for index, name in enumerate(spec.names()):
        manifest = bootstrap.node_manifest(name, index, spec, "v1.33.0")
        assert manifest["metadata"]["annotations"][key] == value
        cidr = ipaddress.ip_network(manifest["spec"]["podCIDR"])
        assert cidr.subnet_of(ipaddress.ip_network(bootstrap.FAKE_POD_RANGE))
