"""The cluster's paths and name rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from prenv.cluster.layout import ClusterLayout, default_state_dir
from prenv.cluster.records import ClusterState, ClusterStatus, IngressPorts, NodeCounts
from prenv.errors import ConfigError


@pytest.mark.parametrize(
    "name",
    ["prenv", "pytest-gw0", "a", "x" * 40, "0abc"],
    ids=["default", "xdist-worker", "one-char", "forty-chars", "leading-digit"],
)
def test_valid_names_are_accepted(name: str, tmp_path: Path) -> None:
    assert ClusterLayout.of(name, tmp_path).name == name


@pytest.mark.parametrize(
    "name",
    ["", "Prenv", "-a", "a-", "a_b", "a/b", "..", "x" * 41],
    ids=["empty", "upper-case", "leading-dash", "trailing-dash", "underscore", "slash", "dots", "too-long"],
)
def test_invalid_names_are_rejected_with_a_config_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cluster name"):
        ClusterLayout.of(name, tmp_path)


def test_everything_a_cluster_owns_lives_under_its_own_directory(tmp_path: Path) -> None:
    layout = ClusterLayout.of("one", tmp_path)
    root = tmp_path / "cluster" / "one"
    assert layout.root == root
    for path in (
        layout.kubeconfig,
        layout.kwok_config,
        layout.pids_dir,
        layout.logs_dir,
        layout.traefik_config,
        layout.traefik_pidfile,
        layout.traefik_log,
        layout.ca_cert,
        layout.kwokctl_log,
    ):
        assert root in path.parents
    # The lock survives removing the directory it guards.
    assert root not in layout.lock_file.parents


def test_two_names_share_no_path(tmp_path: Path) -> None:
    a, b = ClusterLayout.of("gw0", tmp_path), ClusterLayout.of("gw1", tmp_path)
    assert a.root not in b.root.parents and b.root not in a.root.parents and a.root != b.root


def test_state_dir_comes_from_the_environment_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRENV_STATE_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path.resolve()
    monkeypatch.delenv("PRENV_STATE_DIR")
    assert default_state_dir().name == ".state"


def test_status_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    status = ClusterStatus(
        ClusterState.BROKEN,
        tmp_path / "kc.yaml",
        "https://127.0.0.1:1",
        "detail is not exported",
        ca=tmp_path / "ca.crt",
        ingress=IngressPorts(http=8080, https=8443),
        nodes=NodeCounts(real=0, kwok=2),
    )
    assert status.as_dict() == {
        "state": "broken",
        "kubeconfig": str(tmp_path / "kc.yaml"),
        "server": "https://127.0.0.1:1",
        "ca": str(tmp_path / "ca.crt"),
        "ingress": {"http": 8080, "https": 8443},
        "nodes": {"real": 0, "kwok": 2},
    }
