"""The ``driver`` stack: prenv itself, installed in the cluster it manages.

A Deployment of ``prenv serve`` (2 replicas by default; one acts, elected through a Lease; a webhook the Service
hands to the other is relayed to the leader at the pod IP it advertises in the Lease), a Service for webhooks,
a ServiceAccount with least-privilege RBAC, and a Secret holding the GitHub token, webhook secret, database admin DSN
and Pulumi passphrase — all read from this stack's *secret* config, so they are encrypted in state and never in
plain YAML.

**One owner per object.** The ``prenv-system`` namespace belongs to the shared stack (stacks/shared.py), which keeps
it when destroyed; this stack takes its name through the ``prenv:sharedStack`` StackReference and owns only what it
puts there and its cluster-scoped RBAC and admission objects. Destroying either stack leaves the other's objects.

**Least privilege that holds.** RBAC cannot say "only namespaces that are prenv's", and admission never sees reads,
so the rights are split in three:

- cluster-wide (ClusterRole ``prenv-driver``): namespaces, RoleBindings, and ``bind`` on one ClusterRole,
  ``prenv-environment``. Nothing else — no Secret, no Deployment, nothing readable outside the driver's own reach;
- per PR namespace (ClusterRole ``prenv-environment``, bound by a RoleBinding ``prenv-driver`` *in* that namespace):
  the kinds a preview environment is made of, and the reads pulumi-kubernetes' await logic needs (pods, replica
  sets, events, endpoints). The driver can read a Secret only where such a RoleBinding puts it — never in
  ``kube-system`` or another team's namespace. The PR stack creates that RoleBinding right after its namespace
  and before anything in it (components/namespace.py);
- a ValidatingAdmissionPolicy (``prenv-driver``, admissionregistration.k8s.io/v1, GA in Kubernetes 1.30) bounds
  every write the driver makes: a namespace it creates, changes or deletes must be labelled
  ``prenv.dev/managed-by=prenv`` and named ``<namespacePrefix>pr-<n>`` (or a branch environment's
  ``<namespacePrefix>br-<slug>-<digits>``) before and after, a RoleBinding may bind only
  ``prenv-environment`` to the driver itself, an object may be written only in such a namespace (or the driver's
  Lease in ``prenv-system``), and nothing else cluster-scoped.

The binding that grants the cluster-wide rights is created after the policy is in force and deleted before it.

**The pod** runs the driver image (devtools/driverimage.py: prenv, the pinned toolchain, the project at
``/opt/prenv/project``) as uid 10001, non-root, no privilege escalation, every capability dropped. Pulumi writes
the project directory (``Pulumi.pr-<n>.yaml``) and ``PULUMI_HOME`` in the image (owned by that user) and prenv's
state (``PRENV_STATE_DIR``, ``HOME``) to an emptyDir. ``driverConfig`` is the pod's prenv.yaml: ``project_dir``
defaults to the image's project, and a ``file://`` state backend is refused (it would live and die with one pod,
unseen by the other replica): use ``s3://`` or Pulumi Cloud. ``prenv:githubAppPrivateKey`` (secret) is mounted as a
file and becomes ``source.github.app.private_key_file``. The API server is reached as ``kubernetes.default.svc``
(``prenv:driverApiHost``), the name every API server's certificate carries.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.meta import INGRESS_AWAIT, SERVICE_AWAIT
from prenv import naming, template
from prenv.errors import ConfigError

IMAGE_PROJECT = "/opt/prenv/project"  # devtools.driverimage.RECIPE.project
STATE_DIR = "/var/lib/prenv"  # devtools.driverimage.RECIPE.home
SECRETS_DIR = "/etc/prenv-secrets"
APP_KEY_FILE = "github-app.pem"
DRIVER_UID = 10001

SHARED_STACK_KEY = "prenv:sharedStack"
SERVICE_ACCOUNT = "prenv-driver"
CLUSTER_ROLE = "prenv-driver"
"""Cluster-wide: namespaces, RoleBindings, and ``bind`` on ENVIRONMENT_ROLE."""
ENVIRONMENT_ROLE = "prenv-environment"
"""What the driver may do inside one PR namespace; bound there by a RoleBinding ``prenv-driver`` to the driver."""
POLICY = "prenv-driver"
SECRET_KEYS = {
    "githubToken": "GITHUB_TOKEN",
    "gitlabToken": "GITLAB_TOKEN",
    # An s3:// state backend without a workload identity (IRSA and the like): the keys, from secret config.
    "awsAccessKeyId": "AWS_ACCESS_KEY_ID",
    "awsSecretAccessKey": "AWS_SECRET_ACCESS_KEY",
    "webhookSecret": "PRENV_WEBHOOK_SECRET",
    "databaseAdminDsn": "PRENV_DATABASE_ADMIN_DSN",
    "pulumiPassphrase": "PULUMI_CONFIG_PASSPHRASE",
}

VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ = ["get", "list", "watch"]
# What a preview environment is made of (components/, and the kinds a team's own chart commonly renders): the driver
# manages exactly these, and only inside a PR namespace (ENVIRONMENT_ROLE).
ENVIRONMENT_RULES = [
    ("", ["services", "secrets", "configmaps", "serviceaccounts", "persistentvolumeclaims"], VERBS),
    ("", ["resourcequotas", "limitranges"], VERBS),
    ("apps", ["deployments", "statefulsets"], VERBS),
    ("batch", ["jobs", "cronjobs"], VERBS),
    ("networking.k8s.io", ["ingresses", "networkpolicies"], VERBS),
    ("policy", ["poddisruptionbudgets"], VERBS),
    ("autoscaling", ["horizontalpodautoscalers"], VERBS),
    # Read-only views pulumi-kubernetes' await logic needs (rollout, endpoints, events, a Job's pods).
    ("", ["pods", "endpoints", "events"], READ),
    ("apps", ["replicasets"], READ),
    ("discovery.k8s.io", ["endpointslices"], READ),
    ("events.k8s.io", ["events"], READ),
]


def environment_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """The rules of ENVIRONMENT_ROLE (granted only inside a PR namespace)."""
    return [k8s.rbac.v1.PolicyRuleArgs(api_groups=[g], resources=r, verbs=v) for g, r, v in ENVIRONMENT_RULES]


def cluster_rules() -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """The rules of CLUSTER_ROLE, bound cluster-wide; every write they allow is bounded by the admission policy."""
    return [
        k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["namespaces"], verbs=VERBS),
        k8s.rbac.v1.PolicyRuleArgs(api_groups=["rbac.authorization.k8s.io"], resources=["rolebindings"], verbs=VERBS),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["rbac.authorization.k8s.io"],
            resources=["clusterroles"],
            verbs=["bind"],
            resource_names=[ENVIRONMENT_ROLE],
        ),
    ]


def namespace_pattern(prefix: str) -> str:
    """The RE2 pattern of a PR namespace's name (naming.namespace): ``<prefix>pr-<n>``, n a PR number, or a branch
    environment's ``<prefix>br-[<slug>-]<digits>``."""
    return naming.namespace_pattern(prefix)


def _is_prenv(var: str, pattern: str) -> str:
    """CEL: ``var`` (a Namespace) is prenv's — named by the pattern and labelled managed-by=prenv."""
    label, value = naming.LABEL_MANAGED_BY, naming.MANAGED_BY
    return (
        f"{var}.metadata.name.matches('{pattern}') && has({var}.metadata.labels) && "
        f"'{label}' in {var}.metadata.labels && {var}.metadata.labels['{label}'] == '{value}'"
    )


def policy_spec(namespace: str, prefix: str) -> dict[str, object]:
    """The ValidatingAdmissionPolicy spec bounding every write of the driver's ServiceAccount (see the module doc)."""
    pattern = namespace_pattern(prefix)
    user = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    is_ns = "request.resource.group == '' && request.resource.resource == 'namespaces'"
    is_rb = "request.resource.group == 'rbac.authorization.k8s.io' && request.resource.resource == 'rolebindings'"
    is_lease = (
        f"request.namespace == '{namespace}' && request.resource.group == 'coordination.k8s.io' && "
        "request.resource.resource == 'leases'"
    )
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/*"]}]
        },
        "matchConditions": [{"name": "is-the-prenv-driver", "expression": f"request.userInfo.username == '{user}'"}],
        "variables": [
            {"name": "isNamespace", "expression": is_ns},
            {"name": "isRoleBinding", "expression": is_rb},
            # Self-reviews (`kubectl auth can-i`, whoami) are never stored and grant nothing.
            {
                "name": "isReview",
                "expression": "request.resource.group in ['authorization.k8s.io', 'authentication.k8s.io']",
            },
        ],
        "validations": [
            {
                "expression": f"!variables.isNamespace || (object == null || {_is_prenv('object', pattern)})",
                "messageExpression": (
                    f"'prenv-driver may only create or change namespaces named {pattern} and labelled "
                    f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}, not ' + request.name"
                ),
                "reason": "Forbidden",
            },
            {
                "expression": f"!variables.isNamespace || (oldObject == null || {_is_prenv('oldObject', pattern)})",
                "messageExpression": "'prenv-driver may only change or delete prenv namespaces, not ' + request.name",
                "reason": "Forbidden",
            },
            {
                "expression": (
                    f"variables.isNamespace || variables.isReview || ({is_lease}) || (namespaceObject != null && "
                    f"{_is_prenv('namespaceObject', pattern)})"
                ),
                "messageExpression": (
                    "'prenv-driver may write only in prenv namespaces, not ' + request.resource.resource + "
                    "' in ' + (request.namespace == '' ? 'the cluster scope' : 'namespace ' + request.namespace)"
                ),
                "reason": "Forbidden",
            },
            {
                "expression": (
                    "!variables.isRoleBinding || object == null || (object.roleRef.kind == 'ClusterRole' && "
                    f"object.roleRef.name == '{ENVIRONMENT_ROLE}' && has(object.subjects) && "
                    f"object.subjects.all(s, s.kind == 'ServiceAccount' && s.name == '{SERVICE_ACCOUNT}' && "
                    f"has(s.namespace) && s.namespace == '{namespace}'))"
                ),
                "message": f"prenv-driver may only bind ClusterRole {ENVIRONMENT_ROLE} to itself",
                "reason": "Forbidden",
            },
        ],
    }


def namespace_prefix(cfg: pulumi.Config, project_dir: Path) -> str:
    """``prenv:namespacePrefix`` of this stack, else the template's (Pulumi.preview.yaml), validated."""
    prefix = cfg.get("namespacePrefix")
    if prefix is None:
        raw = template.read_template_file(project_dir).get("namespacePrefix")
        prefix = str(raw) if raw else ""
    return naming.check_namespace_prefix(prefix)


def system_namespace(cfg: pulumi.Config) -> pulumi.Output[str]:
    """The shared stack's namespace (its ``namespace`` output), through the ``prenv:sharedStack`` reference."""
    ref = cfg.get("sharedStack")
    if not ref:
        raise ConfigError(
            SHARED_STACK_KEY,
            "is required: the driver lives in the shared stack's namespace (deploy `pulumi up -s shared` first, "
            "then `pulumi config set -s driver prenv:sharedStack <org>/prenv/shared`)",
        )
    return pulumi.StackReference(ref).require_output("namespace").apply(str)


def driver_config(document: object, *, app_key: bool) -> dict[str, object]:
    """The pod's prenv.yaml from ``prenv:driverConfig``: the image's project unless set, the mounted GitHub App key
    when one is given; a ``file://`` backend is refused, naming the key."""
    if not isinstance(document, dict):
        raise ConfigError("prenv:driverConfig", "must be an object (the driver's prenv.yaml)")
    config = dict(document)
    config.setdefault("project_dir", IMAGE_PROJECT)
    backend = str((config.get("state") or {}).get("backend", "")) if isinstance(config.get("state"), dict) else ""
    if not backend or backend.startswith("file:"):
        raise ConfigError(
            "prenv:driverConfig.state.backend",
            f"{backend or 'the default file:// backend'} would live and die with one pod, unseen by the other "
            "replica; use s3://… or Pulumi Cloud (https://api.pulumi.com)",
        )
    if app_key:
        source = dict(config.get("source") or {})
        github = dict(source.get("github") or {})
        app = dict(github.get("app") or {})
        app.setdefault("private_key_file", f"{SECRETS_DIR}/{APP_KEY_FILE}")
        github["app"], source["github"], config["source"] = app, github, source
    return config


def run(project_dir: Path | None = None) -> None:
    cfg = pulumi.Config("prenv")
    image = cfg.require("driverImage")
    replicas = cfg.get_int("driverReplicas") or 2
    prefix = namespace_prefix(cfg, project_dir or Path.cwd())
    app_key = cfg.get_secret("githubAppPrivateKey")
    api_host = cfg.get("driverApiHost") or "kubernetes.default.svc"
    labels = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY, "app.kubernetes.io/name": "prenv-driver"}
    meta = k8s.meta.v1.ObjectMetaArgs
    rbac = "rbac.authorization.k8s.io"

    namespace = system_namespace(cfg)
    sa = k8s.core.v1.ServiceAccount(
        "driver-sa", metadata=meta(name=SERVICE_ACCOUNT, namespace=namespace, labels=labels)
    )
    subject = k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=sa.metadata.name, namespace=namespace)
    k8s.rbac.v1.ClusterRole(
        "driver-environment-role", metadata=meta(name=ENVIRONMENT_ROLE, labels=labels), rules=environment_rules()
    )
    policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
        "driver-policy",
        metadata=meta(name=POLICY, labels=labels),
        spec=namespace.apply(lambda ns: policy_spec(ns, prefix)),
    )
    policy_binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
        "driver-policy-binding",
        metadata=meta(name=POLICY, labels=labels),
        spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs(
            policy_name=policy.metadata.name, validation_actions=["Deny"]
        ),
    )
    role = k8s.rbac.v1.ClusterRole(
        "driver-clusterrole", metadata=meta(name=CLUSTER_ROLE, labels=labels), rules=cluster_rules()
    )
    k8s.rbac.v1.ClusterRoleBinding(
        "driver-clusterrolebinding",
        metadata=meta(name=CLUSTER_ROLE, labels=labels),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group=rbac, kind="ClusterRole", name=role.metadata.name),
        subjects=[subject],
        # Granted only once the policy bounding it is in force; revoked before the policy goes.
        opts=pulumi.ResourceOptions(depends_on=[policy_binding]),
    )
    lease_role = k8s.rbac.v1.Role(
        "driver-lease-role",
        metadata=meta(name="prenv-driver-lease", namespace=namespace, labels=labels),
        rules=[
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["coordination.k8s.io"], resources=["leases"], verbs=["get", "create", "update"]
            )
        ],
    )
    k8s.rbac.v1.RoleBinding(
        "driver-lease-binding",
        metadata=meta(name="prenv-driver-lease", namespace=namespace, labels=labels),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group=rbac, kind="Role", name=lease_role.metadata.name),
        subjects=[subject],
    )
    # prenv.yaml for the pod: the `prenv:driverConfig` object of this stack (sources, filters, state, serve…).
    settings = k8s.core.v1.ConfigMap(
        "driver-config",
        metadata=meta(name="prenv-driver-config", namespace=namespace, labels=labels),
        data={
            "prenv.yaml": yaml.safe_dump(
                driver_config(cfg.require_object("driverConfig"), app_key=app_key is not None), sort_keys=False
            )
        },
    )
    secret_data = {env: cfg.get_secret(key) for key, env in SECRET_KEYS.items()}
    secret = k8s.core.v1.Secret(
        "driver-secret",
        metadata=meta(name="prenv-driver", namespace=namespace, labels=labels),
        string_data={k: v for k, v in secret_data.items() if v is not None},
    )
    secret_files: list[k8s.core.v1.VolumeArgs] = []
    secret_mounts: list[k8s.core.v1.VolumeMountArgs] = []
    if app_key is not None:
        key_secret = k8s.core.v1.Secret(
            "driver-github-app",
            metadata=meta(name="prenv-driver-github-app", namespace=namespace, labels=labels),
            string_data={APP_KEY_FILE: app_key},
        )
        secret_files.append(
            k8s.core.v1.VolumeArgs(
                name="github-app",
                secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=key_secret.metadata.name, default_mode=0o400),
            )
        )
        secret_mounts.append(k8s.core.v1.VolumeMountArgs(name="github-app", mount_path=SECRETS_DIR, read_only=True))
    selector = {"app.kubernetes.io/name": "prenv-driver"}
    k8s.apps.v1.Deployment(
        "driver",
        metadata=meta(name="prenv-driver", namespace=namespace, labels=labels),
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
                        ),
                        k8s.core.v1.VolumeArgs(name="state", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                        *secret_files,
                    ],
                    security_context=k8s.core.v1.PodSecurityContextArgs(
                        run_as_non_root=True,
                        run_as_user=DRIVER_UID,
                        run_as_group=DRIVER_UID,
                        fs_group=DRIVER_UID,
                        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                    ),
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
                            env=[
                                k8s.core.v1.EnvVarArgs(name="PRENV_LEADER_ELECTION", value="true"),
                                # Where followers relay the webhooks they receive: this pod, while it leads.
                                k8s.core.v1.EnvVarArgs(
                                    name="POD_IP",
                                    value_from=k8s.core.v1.EnvVarSourceArgs(
                                        field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="status.podIP")
                                    ),
                                ),
                                k8s.core.v1.EnvVarArgs(
                                    name="PRENV_SERVE__LEADER_ELECTION__ADVERTISE_URL", value="http://$(POD_IP):8080"
                                ),
                                k8s.core.v1.EnvVarArgs(name="PRENV_STATE_DIR", value=STATE_DIR),
                                k8s.core.v1.EnvVarArgs(name="HOME", value=STATE_DIR),
                                k8s.core.v1.EnvVarArgs(name="KUBERNETES_SERVICE_HOST", value=api_host),
                            ],
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/prenv", read_only=True),
                                k8s.core.v1.VolumeMountArgs(name="state", mount_path=STATE_DIR),
                                *secret_mounts,
                            ],
                            readiness_probe=k8s.core.v1.ProbeArgs(
                                http_get=k8s.core.v1.HTTPGetActionArgs(path="/readyz", port="http")
                            ),
                            liveness_probe=k8s.core.v1.ProbeArgs(
                                http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http")
                            ),
                            security_context=k8s.core.v1.SecurityContextArgs(
                                run_as_non_root=True,
                                allow_privilege_escalation=False,
                                read_only_root_filesystem=False,  # pulumi writes the project dir and PULUMI_HOME
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                            ),
                        )
                    ],
                ),
            ),
        ),
    )
    svc = k8s.core.v1.Service(
        "driver-svc",
        # The Deployment's await already waits for Ready pods; no 10 s endpoint settle on top.
        metadata=meta(name="prenv-driver", namespace=namespace, labels=labels, annotations=SERVICE_AWAIT),
        spec=k8s.core.v1.ServiceSpecArgs(
            selector=selector, ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")]
        ),
    )
    pulumi.export("webhookService", svc.metadata.name)
    host = cfg.get("driverHost")
    if host:
        webhook_ingress(host, cfg, namespace, labels, svc.metadata.name)
        pulumi.export("webhookUrl", f"https://{host}/webhooks/github")


def webhook_ingress(
    host: str, cfg: pulumi.Config, namespace: pulumi.Input[str], labels: dict[str, str], service: pulumi.Input[str]
) -> k8s.networking.v1.Ingress:
    """``https://<prenv:driverHost>/`` → the driver's Service, for GitHub's and GitLab's webhooks: the TLS Secret is
    the shared stack's ``wildcard-tls`` in the same namespace unless ``prenv:driverTlsSecret`` names another; the
    class is ``prenv:driverIngressClass`` (default ``nginx``, the embedded cluster's)."""
    naming.check_base_domain(host, key="prenv:driverHost")  # a DNS name of at least two labels
    backend = k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(name="http")
        )
    )
    return k8s.networking.v1.Ingress(
        "driver-ingress",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name="prenv-driver", namespace=namespace, labels=labels, annotations=INGRESS_AWAIT
        ),
        spec=k8s.networking.v1.IngressSpecArgs(
            ingress_class_name=cfg.get("driverIngressClass") or "nginx",
            tls=[
                k8s.networking.v1.IngressTLSArgs(hosts=[host], secret_name=cfg.get("driverTlsSecret") or "wildcard-tls")
            ],
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[k8s.networking.v1.HTTPIngressPathArgs(path="/", path_type="Prefix", backend=backend)]
                    ),
                )
            ],
        ),
    )
