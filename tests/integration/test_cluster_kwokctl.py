"""kwokctl, as the toolchain built it, is driven the way we think: checked with ``--dry-run`` (no process starts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prenv import procs
from prenv.cluster import kwokctl
from prenv.cluster.layout import ClusterLayout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ClusterLayout, str]:
    tools = kwokctl.resolve_toolset()
    layout = ClusterLayout.of("dry", tmp_path_factory.mktemp("state"))
    layout.root.mkdir(parents=True)
    ports = dict(zip(kwokctl.PORT_OPTIONS, procs.free_ports(len(kwokctl.PORT_OPTIONS)), strict=True))
    layout.kwokctl_options.write_text(kwokctl.options_document(ports))
    output = kwokctl.run(
        kwokctl.create_command(layout, tools, dry_run=True),
        layout.kwokctl_log,
        timeout=60,
        what="kwokctl create cluster --dry-run",
    )
    return layout, output


def test_kwokctl_downloads_nothing(dry_run: tuple[ClusterLayout, str]) -> None:
    _, output = dry_run
    downloads = re.findall(r"^# Download (\S+) (?:and extract \S+ )?to (\S+)", output, re.MULTILINE)
    assert downloads, output
    for source, _ in downloads:
        assert Path(source).is_absolute() and Path(source).exists(), f"kwokctl would download {source}"


def test_every_component_binds_to_loopback_on_the_ports_we_chose(dry_run: tuple[ClusterLayout, str]) -> None:
    layout, output = dry_run
    assert "0.0.0.0" not in output  # noqa: S104 - asserting its absence
    ports = re.findall(r"127\.0\.0\.1:(\d+)", output)
    chosen = {
        str(p)
        for p in kwokctl.yaml.safe_load(layout.kwokctl_options.read_text())["options"].values()
        if isinstance(p, int)
    }
    assert set(ports) <= chosen


def test_admission_is_on_and_the_controller_manager_runs_its_default_controllers(
    dry_run: tuple[ClusterLayout, str],
) -> None:
    _, output = dry_run
    apiserver = next(line for line in output.splitlines() if "kube-apiserver --" in line)
    assert "--admission-control=" not in apiserver
    assert "--disable-admission-plugins" not in apiserver
    controller_manager = next(line for line in output.splitlines() if "kube-controller-manager --" in line)
    # No --controllers flag means "*": deployment, replicaset, endpointslice, namespace, serviceaccount(-token),
    # resourcequota and garbagecollector all run.
    assert "--controllers" not in controller_manager
    assert "--service-account-private-key-file=" in controller_manager


def test_nothing_is_written_by_a_dry_run(dry_run: tuple[ClusterLayout, str]) -> None:
    layout, _ = dry_run
    assert not layout.kwok_cluster_dir.exists()
