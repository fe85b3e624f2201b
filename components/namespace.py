"""PreviewNamespace: the namespace one PR lives in, with its ResourceQuota, LimitRange and NetworkPolicy.

The quota and limit range cap what a single PR can take from a shared cluster; the network policy admits traffic
only from the ingress controller's namespace and from inside the namespace, so one PR cannot reach another's pods.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.meta import metadata
from prenv.stackconfig import Limits, Quota


@dataclass(frozen=True)
class PreviewNamespaceArgs:
    name: str  # from prenv.naming.namespace()
    labels: dict[str, str]  # from prenv.naming.labels(): sanitised values only
    quota: Quota
    limits: Limits
    ingress_namespace: str  # the ingress controller's namespace, admitted by the network policy


class PreviewNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:namespace:PreviewNamespace", name, None, opts)
        meta = metadata
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=meta(name=args.name, labels=args.labels),
            # created-at is stamped once; later ups must not rewrite it (TTL counts from creation).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=['metadata.labels["prenv.dev/created-at"]']),
        )
        ns_name = ns.metadata.name
        # The in-cluster driver's rights in this namespace, and only here (stacks/incluster.py): everything else in
        # the namespace waits for this binding, and the destroy deletes it last, after everything else.
        access = k8s.rbac.v1.RoleBinding(
            f"{name}-driver-access",
            metadata=meta(name="prenv-driver", namespace=ns_name, labels=args.labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="prenv-environment"
            ),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name="prenv-driver", namespace="prenv-system")],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns, access])
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=meta(name="prenv-quota", namespace=ns_name, labels=args.labels),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={
                    "requests.cpu": args.quota.cpu,
                    "limits.cpu": args.quota.cpu,
                    "requests.memory": args.quota.memory,
                    "limits.memory": args.quota.memory,
                    "pods": str(args.quota.pods),
                }
            ),
            opts=in_ns,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta(name="prenv-limits", namespace=ns_name, labels=args.labels),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container",
                        default={"cpu": args.limits.cpu, "memory": args.limits.memory},
                        default_request={"cpu": args.limits.request_cpu, "memory": args.limits.request_memory},
                    )
                ]
            ),
            opts=in_ns,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(name="prenv-isolation", namespace=ns_name, labels=args.labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"kubernetes.io/metadata.name": args.ingress_namespace}
                                )
                            ),
                        ]
                    )
                ],
            ),
            opts=in_ns,
        )
        self.name = pulumi.Output.all(ns_name, access.id).apply(lambda v: str(v[0]))
        self.register_outputs({"name": self.name})
