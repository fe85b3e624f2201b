"""``up``/``status``/``down`` of a cluster of its own: down leaves no process, listening port or file behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from prenv import procs
from prenv.cluster import ClusterState, EmbeddedCluster
from prenv.cluster import processes as proc
from prenv.cluster.bootstrap import api_client
from tests.fixtures.cluster import cluster_name

pytestmark = pytest.mark.integration


@pytest.fixture
def lifecycle_cluster(worker_id: str, tmp_path: Path) -> Iterator[EmbeddedCluster]:
    embedded = EmbeddedCluster(cluster_name(f"{worker_id}-life"), tmp_path / "state")
    try:
        yield embedded
    finally:
        embedded.down()


def _cli(*args: str, state_dir: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "prenv"), "cluster", *args, "--name", name, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_down_after_up_leaves_no_listening_port_process_or_data(lifecycle_cluster: EmbeddedCluster) -> None:
    info = lifecycle_cluster.up()
    pids = lifecycle_cluster.pids()
    assert len(pids) == 6 and "traefik" in pids
    assert len(info.ports) >= 7
    assert {info.ingress.http, info.ingress.https} <= set(info.ports)
    assert procs.listening_ports(info.ports) == set(info.ports)
    assert lifecycle_cluster.status().state is ClusterState.RUNNING

    lifecycle_cluster.down()

    assert procs.listening_ports(info.ports) == set()
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or not proc.cmdline(pid), f"{name} (pid {pid}) is still running"
    assert not info.state_dir.exists()
    assert lifecycle_cluster.status().state is ClusterState.STOPPED


def test_a_cluster_whose_component_died_is_broken_and_up_starts_just_that_one(
    lifecycle_cluster: EmbeddedCluster,
) -> None:
    lifecycle_cluster.up()
    scheduler = lifecycle_cluster.pids()["kube-scheduler"]
    proc.terminate([(scheduler, "kube-scheduler")], grace=5)

    status = lifecycle_cluster.status()
    assert status.state is ClusterState.BROKEN
    assert "kube-scheduler" in status.detail

    others = {name: pid for name, pid in lifecycle_cluster.pids().items() if name != "kube-scheduler"}
    lifecycle_cluster.up()
    assert lifecycle_cluster.status().state is ClusterState.RUNNING
    # Only the dead process was started again; the cluster and its data were kept.
    after = lifecycle_cluster.pids()
    assert {name: after[name] for name in others} == others
    assert after["kube-scheduler"] != scheduler


def test_a_stopped_cluster_starts_again_with_its_data(lifecycle_cluster: EmbeddedCluster) -> None:
    info = lifecycle_cluster.up()
    with contextlib.closing(api_client(info.kubeconfig)) as api:
        client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "survivor"}})
    for pid in lifecycle_cluster.pids().values():  # what a reboot does
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lifecycle_cluster.status().state is not ClusterState.STOPPED:
        assert time.monotonic() < deadline, lifecycle_cluster.status()
        time.sleep(0.1)

    steps: list[str] = []
    assert lifecycle_cluster.up(progress=lambda step, _: steps.append(step)) == info
    assert any("started with its existing data" in step for step in steps)
    with contextlib.closing(api_client(info.kubeconfig)) as api:
        client.CoreV1Api(api).read_namespaced_config_map("survivor", "default")


def test_the_cli_prints_the_kubeconfig_and_the_status_contract(lifecycle_cluster: EmbeddedCluster) -> None:
    layout = lifecycle_cluster.layout
    up = _cli("up", state_dir=layout.state_dir, name=layout.name)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == str(layout.kubeconfig)
    assert "ready" in up.stderr

    again = _cli("up", state_dir=layout.state_dir, name=layout.name)
    assert again.returncode == 0 and "already running" in again.stderr

    status = _cli("status", "--json", state_dir=layout.state_dir, name=layout.name)
    document = json.loads(status.stdout)
    assert status.returncode == 0
    assert set(document) == {"state", "kubeconfig", "server", "ca", "ingress", "nodes"}
    assert document["state"] == "running"
    assert document["kubeconfig"] == str(layout.kubeconfig)
    assert document["server"].startswith("https://127.0.0.1:")
    assert document["ca"] == str(layout.ca_cert)
    assert procs.listening_ports(document["ingress"].values()) == set(document["ingress"].values())
    assert document["nodes"] == {"real": 0, "kwok": 2}

    down = _cli("down", state_dir=layout.state_dir, name=layout.name)
    assert down.returncode == 0, down.stderr
    stopped = _cli("status", "--json", state_dir=layout.state_dir, name=layout.name)
    assert stopped.returncode == 3 and json.loads(stopped.stdout)["state"] == "stopped"


def test_a_cluster_whose_traefik_died_is_broken_and_up_restarts_it_on_the_same_ports(
    lifecycle_cluster: EmbeddedCluster,
) -> None:
    info = lifecycle_cluster.up()
    traefik = lifecycle_cluster.pids()["traefik"]
    os.kill(traefik, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "traefik" in lifecycle_cluster.pids():
        assert time.monotonic() < deadline
        time.sleep(0.1)

    status = lifecycle_cluster.status()
    assert status.state is ClusterState.BROKEN
    assert status.missing == ("traefik",)

    others = {name: pid for name, pid in lifecycle_cluster.pids().items()}
    assert lifecycle_cluster.up() == info  # same ingress ports, same CA
    after = lifecycle_cluster.pids()
    assert {name: after[name] for name in others} == others
    assert after["traefik"] != traefik
    assert procs.listening_ports([info.ingress.http, info.ingress.https]) == {info.ingress.http, info.ingress.https}
