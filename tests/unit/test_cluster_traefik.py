"""Traefik's static configuration: loopback ports, our IngressClass, published status, nothing phoning home."""

from __future__ import annotations

from pathlib import Path

from prenv.cluster import traefik
from prenv.cluster.records import IngressPorts


def _config(tmp_path: Path) -> dict[str, object]:
    return traefik.static_config(
        ingress_class="nginx", ingress_ip="127.0.0.1", ports=IngressPorts(41001, 41002), log=tmp_path / "traefik.log"
    )


def test_entry_points_listen_on_loopback_only_and_https_terminates_tls(tmp_path: Path) -> None:
    config = _config(tmp_path)
    points = config["entryPoints"]
    assert isinstance(points, dict)
    assert set(points) == {"web", "websecure"}  # no "traefik" entryPoint: no API, dashboard, ping or metrics
    assert points["web"]["address"] == "127.0.0.1:41001"
    assert points["websecure"]["address"] == "127.0.0.1:41002"
    assert points["websecure"]["http"] == {"tls": {}}
    assert "http" not in points["web"]


def test_the_provider_serves_our_class_and_publishes_the_ingress_address(tmp_path: Path) -> None:
    providers = _config(tmp_path)["providers"]
    assert isinstance(providers, dict)
    assert providers["kubernetesIngress"] == {"ingressClass": "nginx", "ingressEndpoint": {"ip": "127.0.0.1"}}
    assert set(providers) == {"kubernetesIngress", "providersThrottleDuration"}


def test_no_dashboard_no_telemetry_and_a_log_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert "api" not in config and "ping" not in config and "metrics" not in config
    assert config["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    log = config["log"]
    assert isinstance(log, dict)
    assert log["filePath"] == str(tmp_path / "traefik.log")


def test_the_ports_are_read_back_from_the_written_file(tmp_path: Path) -> None:
    path = tmp_path / "traefik.yaml"
    assert traefik.read_ports(path) is None
    traefik.write_config(path, _config(tmp_path))
    assert traefik.read_ports(path) == IngressPorts(http=41001, https=41002)
    path.write_text("entryPoints: [garbled\n")
    assert traefik.read_ports(path) is None


def test_the_command_line_names_only_the_config_file_which_also_identifies_the_process(tmp_path: Path) -> None:
    config = tmp_path / "traefik.yaml"
    argv = traefik.command(Path("/tools/traefik"), config)
    assert argv == ["/tools/traefik", f"--configFile={config}"]
    assert traefik.marker(config) in argv


def test_the_provider_uses_the_cluster_kubeconfig_never_an_in_cluster_client(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "KUBECONFIG": "/elsewhere", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    base["KUBERNETES_SERVICE_PORT"] = "443"
    env = traefik.environment(tmp_path / "kubeconfig.yaml", base)
    assert env == {"PATH": "/usr/bin", "KUBECONFIG": str(tmp_path / "kubeconfig.yaml")}
