"""status and down against fake components (scripts standing in for etcd and the apiserver), no toolchain."""

from __future__ import annotations

import ipaddress
import json
import stat
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prenv import procs
from prenv.cluster import EmbeddedCluster, bootstrap, kwokctl, pki, processes, traefik
from prenv.cluster.cli import app
from prenv.cluster.layout import ClusterLayout
from prenv.cluster.node import routes
from prenv.cluster.records import ClusterState, IngressPorts, NodeCounts, NodeKinds
from prenv.cluster.runtime import REAL_NODE_NETWORK
from prenv.errors import ConfigError

LISTENER = f"""#!{sys.executable}
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(120)
"""


def _fake_cluster(layout: ClusterLayout, port: int) -> dict[str, Path]:
    """kwok.yaml naming two components, their scripts, and a kubeconfig; nothing started yet."""
    bin_dir = layout.kwok_cluster_dir / "bin"
    bin_dir.mkdir(parents=True)
    layout.pids_dir.mkdir()
    scripts = {"etcd": bin_dir / "etcd", "kube-apiserver": bin_dir / "kube-apiserver"}
    scripts["etcd"].write_text("#!/bin/sh\nwhile :; do sleep 0.2; done\n")
    scripts["kube-apiserver"].write_text(LISTENER)
    for script in scripts.values():
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    components = "".join(f"- name: {name}\n  binary: {path}\n" for name, path in scripts.items())
    layout.kwok_config.write_text(
        f"kind: KwokctlConfiguration\noptions:\n  kubeApiserverPort: {port}\ncomponents:\n{components}"
    )
    layout.kubeconfig.write_text(
        json.dumps({"clusters": [{"name": "x", "cluster": {"server": f"https://127.0.0.1:{port}"}}]})
    )
    return scripts


def _start(layout: ClusterLayout, name: str, script: Path, *args: str) -> int:
    return processes.spawn_detached(
        [str(script), *args],
        log=layout.logs_dir / f"{name}.log",
        pidfile=layout.pids_dir / f"{name}.pid",
        cwd=layout.root,
    )


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while not procs.listening_ports([port]):
        assert time.monotonic() < deadline, "fake apiserver never listened"
        time.sleep(0.05)


def test_a_cluster_that_was_never_created_is_stopped_and_down_is_a_no_op(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    status = cluster.status()
    assert status.state is ClusterState.STOPPED
    assert status.server is None
    assert status.kubeconfig == cluster.layout.kubeconfig
    cluster.down(progress=lambda *_: None)


def test_status_goes_stopped_broken_and_down_leaves_no_process_port_or_file(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    layout = cluster.layout
    port = procs.free_ports(1)[0]
    scripts = _fake_cluster(layout, port)

    assert cluster.status().state is ClusterState.STOPPED  # created once, nothing running (after a reboot)

    etcd = _start(layout, "etcd", scripts["etcd"])
    status = cluster.status()
    assert status.state is ClusterState.BROKEN
    assert "kube-apiserver" in status.detail and "traefik" in status.detail
    assert status.server == f"https://127.0.0.1:{port}"

    apiserver = _start(layout, "kube-apiserver", scripts["kube-apiserver"], str(port))
    _wait_listening(port)
    assert set(cluster.pids()) == {"etcd", "kube-apiserver"}
    assert cluster.rss_bytes() > 0

    steps: list[str] = []
    cluster.down(progress=lambda step, _: steps.append(step))

    assert not processes.is_alive(etcd, str(scripts["etcd"]))
    assert not processes.is_alive(apiserver, str(scripts["kube-apiserver"]))
    assert procs.listening_ports([port]) == set()
    assert not layout.root.exists()
    assert any("stopped 2 process" in s for s in steps)
    assert cluster.status().state is ClusterState.STOPPED


def test_status_json_prints_exactly_the_contract_and_exits_3_when_stopped(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--json", "--name", "gw0", "--state-dir", str(tmp_path)])
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document == {
        "state": "stopped",
        "kubeconfig": str(ClusterLayout.of("gw0", tmp_path).kubeconfig),
        "server": None,
        "ca": None,
        "ingress": None,
        "nodes": {"real": 0, "kwok": 2},
    }


def test_status_json_names_the_ca_and_the_ingress_ports_once_the_cluster_has_them(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    layout = cluster.layout
    pki.ensure_ca(layout.tls_dir, "test CA")
    traefik.write_config(
        layout.traefik_config,
        traefik.static_config(
            ingress_class="nginx", ingress_ip="127.0.0.1", ports=IngressPorts(40001, 40002), log=layout.traefik_log
        ),
    )
    result = CliRunner().invoke(app, ["status", "--json", "--name", "gw0", "--state-dir", str(tmp_path)])
    document = json.loads(result.stdout)
    assert document["ca"] == str(layout.ca_cert)
    assert document["ingress"] == {"http": 40001, "https": 40002}
    assert document["nodes"] == {"real": 0, "kwok": 2}


def test_the_wildcard_command_prints_a_certificate_and_key_signed_by_the_cluster_ca(tmp_path: Path) -> None:
    args = ["wildcard", "--base-domain", "preview.test", "--name", "gw0", "--state-dir", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    cert, key = (Path(line) for line in first.stdout.splitlines())
    assert pki.dns_names(cert) == ["*.preview.test", "preview.test"]
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert CliRunner().invoke(app, args).stdout == first.stdout
    assert cert.read_bytes() == EmbeddedCluster("gw0", tmp_path).wildcard_certificate("preview.test").cert.read_bytes()


def test_up_without_the_toolchain_fails_with_the_tool_error(tmp_path: Path) -> None:
    from prenv.errors import ToolError

    def missing(name: str) -> Path:
        raise ToolError(f"{name}: not built; run `make tools`")

    with pytest.raises(ToolError, match="not built"):
        EmbeddedCluster("gw0", tmp_path, tool_path=missing).up(progress=lambda *_: None)


def test_down_leaves_not_even_its_lock_file(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    cluster.layout.root.mkdir(parents=True)
    cluster.down(progress=lambda *_: None)
    assert list((tmp_path / "cluster").iterdir()) == []


def test_a_garbled_kwok_record_is_reported_as_broken_not_raised(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    cluster.layout.kwok_config.parent.mkdir(parents=True)
    cluster.layout.kwok_config.write_text("options: [unclosed\n")
    status = cluster.status()
    assert status.state is ClusterState.BROKEN
    assert "kwok.yaml" in status.detail


def test_down_also_stops_the_ingress_publisher_of_a_cluster_started_before_traefik(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    cluster.layout.root.mkdir(parents=True)
    legacy = processes.spawn_detached(
        [sys.executable, "-c", "import time; time.sleep(120)", "-m", "prenv.cluster.ingress_publisher"],
        log=cluster.layout.root / "ingress-publisher.log",
        pidfile=cluster.layout.root / "ingress-publisher.pid",
        cwd=cluster.layout.root,
    )
    assert processes.is_alive(legacy, "prenv.cluster.ingress_publisher")
    cluster.down(progress=lambda *_: None)
    assert not processes.is_alive(legacy, "prenv.cluster.ingress_publisher")
    assert not cluster.layout.root.exists()


def _record_nodes(layout: ClusterLayout, kinds: str, kwok: int) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    network = {"name": "prenv-t", "bridge": "pt0", "subnet": "10.251.7.0/24"} if kinds != "kwok" else None
    layout.nodes_file.write_text(json.dumps({"kinds": kinds, "kwok": kwok, "network": network}))


def test_the_default_is_kwok_nodes_only(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path)
    assert cluster.node_kinds is NodeKinds.KWOK
    assert cluster.real_node() is None
    assert cluster.status().nodes == NodeCounts(real=0, kwok=2)


@pytest.mark.parametrize(
    ("kinds", "kwok", "expected"),
    [("real", 0, NodeCounts(real=1, kwok=0)), ("both", 2, NodeCounts(real=1, kwok=2)), ("kwok", 5, NodeCounts(0, 5))],
    ids=["real", "both", "kwok"],
)
def test_a_created_cluster_keeps_the_node_kinds_it_was_created_with(
    tmp_path_factory: pytest.TempPathFactory, kinds: str, kwok: int, expected: NodeCounts
) -> None:
    tmp_path = tmp_path_factory.mktemp("k")  # short: containerd's socket path below it must stay under 108 bytes
    layout = ClusterLayout.of("gw0", tmp_path)
    _record_nodes(layout, kinds, kwok)
    cluster = EmbeddedCluster("gw0", tmp_path)  # asks for the default, kwok
    assert cluster.node_kinds is NodeKinds(kinds)
    assert cluster.status().nodes == expected
    result = CliRunner().invoke(app, ["status", "--json", "--name", "gw0", "--state-dir", str(tmp_path)])
    assert json.loads(result.stdout)["nodes"] == {"real": expected.real, "kwok": expected.kwok}
    node = cluster.real_node()
    if expected.real:
        assert node is not None
        assert node.layout.root == layout.node_dir
        assert node.network.bridge == "pt0"
    else:
        assert node is None


def test_real_nodes_create_no_fake_nodes(tmp_path: Path) -> None:
    cluster = EmbeddedCluster("gw0", tmp_path, node_kinds="real")
    cluster.layout.root.mkdir(parents=True)
    cluster._record_kinds()
    assert cluster.nodes.count == 0
    assert json.loads(cluster.layout.nodes_file.read_text())["kinds"] == "real"


def test_a_dead_kubelet_makes_a_cluster_with_a_real_node_broken(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp_path = tmp_path_factory.mktemp("k")
    layout = ClusterLayout.of("gw0", tmp_path)
    port = procs.free_ports(1)[0]
    scripts = _fake_cluster(layout, port)
    _record_nodes(layout, "real", 0)
    cluster = EmbeddedCluster("gw0", tmp_path)
    try:
        _start(layout, "etcd", scripts["etcd"])
        _start(layout, "kube-apiserver", scripts["kube-apiserver"], str(port))
        status = cluster.status()
        assert status.state is ClusterState.BROKEN
        assert {"containerd", "kubelet", "kube-proxy", "coredns"} <= set(status.missing)
        assert not set(cluster.pids()) & {"containerd", "kubelet"}
    finally:
        for name in ("etcd", "kube-apiserver"):
            pid = processes.read_pidfile(layout.pids_dir / f"{name}.pid")
            if pid is not None:
                processes.terminate([(pid, "")], grace=2)


def test_the_real_nodes_network_stays_clear_of_kwoks_pod_range_and_the_services() -> None:
    subnet = ipaddress.ip_network(REAL_NODE_NETWORK.subnet)
    assert not subnet.overlaps(ipaddress.ip_network(bootstrap.FAKE_POD_RANGE))
    assert not subnet.overlaps(ipaddress.ip_network(kwokctl.SERVICE_CIDR))


def test_up_offers_real_kwok_and_both_and_refuses_anything_else(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--nodes", "fake", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--nodes" in result.output


@pytest.mark.parametrize(
    ("table", "clash"),
    [
        ("default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n", []),
        ("blackhole 10.244.0.0/16\n", []),
        ("10.244.3.0/24 dev br0 scope link\n", ["10.244.3.0/24 dev br0 scope link"]),
        ("10.0.0.0/8 via 192.0.2.9 dev eth0\n", ["10.0.0.0/8 via 192.0.2.9 dev eth0"]),
    ],
    ids=["host-only", "ours", "inside", "around"],
)
def test_the_fake_pod_range_is_blackholed_only_where_the_machine_routes_none_of_it(
    table: str, clash: list[str]
) -> None:
    assert routes.overlapping_routes("10.244.0.0/16", table) == clash


def test_up_refuses_a_real_node_under_a_state_dir_too_deep_for_containerd_before_starting_anything(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 80)
    cluster = EmbeddedCluster("gw0", deep, node_kinds="real")
    with pytest.raises(ConfigError, match="too deep"):
        cluster.up(progress=lambda *_: None)
    assert not cluster.layout.root.exists()
    assert cluster.status().state is ClusterState.STOPPED
    cluster.down(progress=lambda *_: None)
