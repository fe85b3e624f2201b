"""Object metadata every preview object carries: its name, its labels, and a claim of ownership.

prenv owns these objects outright: their names derive from the PR number, inside the PR's own namespace. The
``pulumi.com/patchForce`` annotation makes pulumi-kubernetes' server-side apply take over fields another field
manager holds, which is what recovery needs: after a crash, a pending create is cleared and the next run meets the
object it had already created under a different manager name; without the annotation that run fails on a conflict.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

OWNED = {"pulumi.com/patchForce": "true"}

# What an up waits for. pulumi-kubernetes' built-in Service and Ingress awaiters sleep 10 s after every Endpoints
# event for the endpoints to "settle" (provider/pkg/await/service.go and ingress.go, hard-coded): measured, that was
# 10 of the 12 s a PR's up took. prenv awaits what readiness means instead: every Deployment available (the built-in
# Deployment awaiter, unchanged; the Service routes to exactly those pods) and the Ingress admitted by its controller
# (``status.loadBalancer`` published). A template's ``prenv:ingress.annotations`` may override the Ingress condition.
SERVICE_AWAIT = {"pulumi.com/skipAwait": "true"}
INGRESS_AWAIT = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}


def metadata(
    name: pulumi.Input[str],
    namespace: pulumi.Input[str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=namespace, labels=labels, annotations={**OWNED, **(annotations or {})}
    )
