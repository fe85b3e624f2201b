"""status and down against fake components (scripts standing in for etcd and the apiserver), no toolchain."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prenv import procs
from prenv.cluster import EmbeddedCluster, pki, processes, traefik
from prenv.cluster.cli import app
from prenv.cluster.layout import ClusterLayout
from prenv.cluster.records import ClusterState, IngressPorts

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
