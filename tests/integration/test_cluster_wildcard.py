"""Wildcard TLS for real on the embedded cluster: the cluster's CA signs ``*.<base domain>``, the shared stack holds
it (from the two files, ``prenv:wildcardCertFile`` / ``prenv:wildcardKeyFile``), a PR stack in ``tls.mode: wildcard``
copies it into its namespace, and Traefik serves exactly that certificate for the PR's host.

Only the TLS handshake is checked through Traefik: the PR's pods run on KWOK with made-up IPs that are not on this
machine, so no HTTP request is sent to them (test_cluster_traefik.py covers routing to a real backend).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from kubernetes import client

from prenv.cluster import ClusterInfo, EmbeddedCluster
from prenv.gateway import gateway_for
from prenv.model import DesiredEnvironment, PullRequest
from prenv.toolchain import cache_dir
from tests.fixtures.cluster import wait_for_certificate
from tests.fixtures.preview import BASE_DOMAIN, shared_stack, unique_pr

pytestmark = pytest.mark.integration


def test_the_shared_stack_holds_the_cluster_certificate_and_a_pr_namespace_serves_it_through_traefik(
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    wildcard_project_dir: Path,
    backend_url: str,
    preview_env: dict[str, str],
    seed_database: str,
) -> None:
    pair = EmbeddedCluster(cluster.name).wildcard_certificate(BASE_DOMAIN)
    gateway = gateway_for(wildcard_project_dir, backend_url, preview_env, pulumi_root=cache_dir())
    core = client.CoreV1Api(cluster_api)
    n = unique_pr()
    host = f"web-{n}.{BASE_DOMAIN}"
    with shared_stack(wildcard_project_dir, backend_url, preview_env) as outputs:
        assert outputs["wildcardCert"] == pair.cert_pem()
        assert "wildcardKey" not in outputs  # a secret: never returned in plain text
        try:
            pull = PullRequest(number=n, sha="5" * 40, branch="tls", base="main", author="dev", title="t")
            state = gateway.up(DesiredEnvironment(pr=pull, config_hash="h"))
            assert state.url == f"https://{host}"

            secret = core.read_namespaced_secret("prenv-wildcard-tls", f"pr-{n}")
            assert secret.type == "kubernetes.io/tls"
            assert base64.b64decode(secret.data["tls.crt"]).decode() == pair.cert_pem()
            assert base64.b64decode(secret.data["tls.key"]).decode() == pair.key_pem()
            ingress = client.NetworkingV1Api(cluster_api).read_namespaced_ingress("web", f"pr-{n}")
            assert [(t.hosts, t.secret_name) for t in ingress.spec.tls] == [([host], "prenv-wildcard-tls")]
            assert ingress.status.load_balancer.ingress[0].ip == "127.0.0.1"

            # Traefik loads the namespace's Secret and presents it for the PR's host; the CA verifies chain and name.
            wait_for_certificate(cluster, host, pair.cert.read_bytes())
        finally:
            gateway.destroy(n)
