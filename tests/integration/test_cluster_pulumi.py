"""pulumi-kubernetes deploys to the embedded cluster with its normal await logic, and destroys cleanly.

This is the cluster's side of the contract: a Deployment becomes ready, its Service gets endpoints and its
Ingress gets a load-balancer address from Traefik, so ``pulumi up`` finishes without skipping
awaits (``pulumi.com/skipAwait``) and without waiting for a timeout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from prenv.cluster import ClusterInfo
from prenv.toolchain import cache_dir, pulumi_env, tool_path

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)


def _program(kubeconfig: str, namespace: str) -> auto.PulumiFn:
    def program() -> None:
        opts = pulumi.ResourceOptions(provider=k8s.Provider("embedded", kubeconfig=kubeconfig))
        labels = {"app": "web"}
        ns = k8s.core.v1.Namespace("ns", metadata={"name": namespace}, opts=opts)
        meta: dict[str, Any] = {"name": "web", "namespace": ns.metadata.name, "labels": labels}
        deployment = k8s.apps.v1.Deployment(
            "web",
            metadata=meta,
            spec={
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
                },
            },
            opts=opts,
        )
        service = k8s.core.v1.Service(
            "web",
            metadata=meta,
            spec={"selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[deployment])),
        )
        ingress = k8s.networking.v1.Ingress(
            "web",
            metadata=meta,
            spec={
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": "web-1.preview.test",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": service.metadata.name, "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ],
            },
            opts=opts,
        )
        pulumi.export("ingress_ip", ingress.status.apply(lambda s: s.load_balancer.ingress[0].ip))
        pulumi.export("ready_replicas", deployment.status.apply(lambda s: s.ready_replicas))

    return program


@pytest.fixture
def stack(cluster: ClusterInfo, tmp_path: Path) -> Iterator[tuple[auto.Stack, str]]:
    tool_path("pulumi-resource-kubernetes")  # a missing provider fails here, with `make tools` in the message
    namespace = f"pulumi-{uuid.uuid4().hex[:8]}"
    backend = tmp_path / "backend"
    backend.mkdir()
    stack = auto.create_stack(
        stack_name="cluster-smoke",
        project_name="prenv-cluster-smoke",
        program=_program(cluster.kubeconfig.read_text(), namespace),
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            env_vars=pulumi_env(),
            pulumi_home=pulumi_env()["PULUMI_HOME"],
            pulumi_command=auto.PulumiCommand(root=str(cache_dir()), skip_version_check=True),
            project_settings=auto.ProjectSettings(
                name="prenv-cluster-smoke", runtime="python", backend=auto.ProjectBackend(url=backend.as_uri())
            ),
        ),
    )
    try:
        yield stack, namespace
    finally:
        stack.destroy(on_output=logger.info)
        stack.workspace.remove_stack("cluster-smoke")


def test_pulumi_creates_and_destroys_an_app_with_its_normal_awaits(
    stack: tuple[auto.Stack, str], cluster_api: client.ApiClient
) -> None:
    pulumi_stack, namespace = stack
    started = time.monotonic()
    result = pulumi_stack.up(on_output=logger.info)
    elapsed = time.monotonic() - started

    assert result.summary.result == "succeeded"
    assert result.outputs["ingress_ip"].value == "127.0.0.1"
    assert result.outputs["ready_replicas"].value == 2
    # The awaits returned because the cluster answered, not because a timeout expired.
    assert elapsed < 120, f"pulumi up took {elapsed:.0f}s"

    destroyed = pulumi_stack.destroy(on_output=logger.info)
    assert destroyed.summary.result == "succeeded"
    try:
        phase = client.CoreV1Api(cluster_api).read_namespace(namespace).status.phase
    except ApiException as e:
        assert e.status == 404
    else:
        assert phase == "Terminating"
