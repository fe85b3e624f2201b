"""The ``driver`` stack: prenv itself, installed in the cluster it manages.

A Deployment of ``prenv serve`` (2 replicas by default; one acts, elected through a Lease), a Service for webhooks,
a ServiceAccount with least-privilege RBAC (only the kinds a preview environment is made of, plus its own Lease),
and a Secret holding the GitHub token, webhook secret, database admin DSN and Pulumi passphrase — all read from
this stack's *secret* config, so they are encrypted in state and never in plain YAML.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml

from prenv import naming

NAMESPACE = naming.SYSTEM_NAMESPACE
SECRET_KEYS = {
    "githubToken": "GITHUB_TOKEN",
    "webhookSecret": "PRENV_WEBHOOK_SECRET",
    "databaseAdminDsn": "PRENV_DATABASE_ADMIN_DSN",
    "pulumiPassphrase": "PULUMI_CONFIG_PASSPHRASE",
}

# What a preview environment is made of (components/): the driver may manage exactly these, cluster-wide.
MANAGED_RULES = [
    ("", ["namespaces", "resourcequotas", "limitranges", "services", "secrets"]),
    ("apps", ["deployments"]),
    ("networking.k8s.io", ["ingresses", "networkpolicies"]),
]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def rbac_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    rules = [k8s.rbac.v1.PolicyRuleArgs(api_groups=[g], resources=r, verbs=VERBS) for g, r in MANAGED_RULES]
    # Read-only views pulumi-kubernetes' await logic needs (rollout, endpoints, events).
    rules.append(
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["", "apps", "discovery.k8s.io"],
            resources=["pods", "replicasets", "endpoints", "endpointslices", "events"],
            verbs=["get", "list", "watch"],
        )
    )
    return rules


def run() -> None:
    cfg = pulumi.Config("prenv")
    image = cfg.require("driverImage")
    replicas = cfg.get_int("driverReplicas") or 2
    labels = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY, "app.kubernetes.io/name": "prenv-driver"}
    meta = k8s.meta.v1.ObjectMetaArgs

    ns = k8s.core.v1.Namespace("driver-ns", metadata=meta(name=NAMESPACE, labels=labels))
    in_ns = pulumi.ResourceOptions(depends_on=[ns])
    sa = k8s.core.v1.ServiceAccount("driver-sa", metadata=meta(name="prenv-driver", namespace=NAMESPACE), opts=in_ns)
    role = k8s.rbac.v1.ClusterRole("driver-clusterrole", metadata=meta(name="prenv-driver"), rules=rbac_rules())
    k8s.rbac.v1.ClusterRoleBinding(
        "driver-clusterrolebinding",
        metadata=meta(name="prenv-driver"),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
        ),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=sa.metadata.name, namespace=NAMESPACE)],
    )
    lease_role = k8s.rbac.v1.Role(
        "driver-lease-role",
        metadata=meta(name="prenv-driver-lease", namespace=NAMESPACE),
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["get", "create", "update"]
            )
        ],
        opts=in_ns,
    )
    k8s.rbac.v1.RoleBinding(
        "driver-lease-binding",
        metadata=meta(name="prenv-driver-lease", namespace=NAMESPACE),
        role_ref=k8s.rbac.v1.RoleRefArgs(
            api_group="rbac.authorization.k8s.io", kind="Role", name=lease_role.metadata.name
        ),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=sa.metadata.name, namespace=NAMESPACE)],
        opts=in_ns,
    )
    # prenv.yaml for the pod: the `prenv:driverConfig` object of this stack (sources, filters, state, serve…).
    settings = k8s.core.v1.ConfigMap(
        "driver-config",
        metadata=meta(name="prenv-driver-config", namespace=NAMESPACE, labels=labels),
        data={"prenv.yaml": yaml.safe_dump(cfg.require_object("driverConfig"), sort_keys=False)},
        opts=in_ns,
    )
    secret_data = {env: cfg.get_secret(key) for key, env in SECRET_KEYS.items()}
    secret = k8s.core.v1.Secret(
        "driver-secret",
        metadata=meta(name="prenv-driver", namespace=NAMESPACE, labels=labels),
        string_data={k: v for k, v in secret_data.items() if v is not None},
        opts=in_ns,
    )
    selector = {"app.kubernetes.io/name": "prenv-driver"}
    k8s.apps.v1.Deployment(
        "driver",
        metadata=meta(name="prenv-driver", namespace=NAMESPACE, labels=labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=meta(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=sa.metadata.name,
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="config",
                            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=settings.metadata.name),
                        )
                    ],
                    termination_grace_period_seconds=660,  # let a running pulumi operation finish (serve's bound)
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="prenv",
                            image=image,
                            args=["serve", "--config", "/etc/prenv/prenv.yaml"],
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=8080)],
                            env_from=[
                                k8s.core.v1.EnvFromSourceArgs(
                                    secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=secret.metadata.name)
                                )
                            ],
                            env=[k8s.core.v1.EnvVarArgs(name="PRENV_LEADER_ELECTION", value="true")],
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/prenv", read_only=True)
                            ],
                            readiness_probe=k8s.core.v1.ProbeArgs(
                                http_get=k8s.core.v1.HTTPGetActionArgs(path="/readyz", port="http")
                            ),
                            liveness_probe=k8s.core.v1.ProbeArgs(
                                http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http")
                            ),
                            security_context=k8s.core.v1.SecurityContextArgs(
                                run_as_non_root=True, allow_privilege_escalation=False, read_only_root_filesystem=False
                            ),
                        )
                    ],
                ),
            ),
        ),
        opts=in_ns,
    )
    svc = k8s.core.v1.Service(
        "driver-svc",
        metadata=meta(name="prenv-driver", namespace=NAMESPACE, labels=labels),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=selector, ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")]
        ),
        opts=in_ns,
    )
    pulumi.export("webhookService", svc.metadata.name)
