"""PreviewApp: one Deployment and one Service per configured service of the app under review.

The image is ``<repository>:<tag>`` (tag ``pr-<n>`` unless the PR sets one). The commit sha is a pod annotation, so
every push rolls the pods even when the tag is stable. Credentials reach the containers only through Secrets
(``DATABASE_URL`` from the database Secret, staging secrets via ``envFrom``); nothing secret is put in plain env.

Every container gets ``PUBLIC_URL``, ``PRENV_PR``, ``PRENV_SHA`` and ``PORT`` (its service's port, unless the
template's env sets ``PORT`` itself). A Deployment that is not available within ``rollout_timeout`` fails the up (a
crashing image, a failing readiness probe) instead of pulumi's ten minutes. Containers report their last log lines
as the termination message when they fail (``FallbackToLogsOnError``), so the driver can say why from the API alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.meta import SERVICE_AWAIT, metadata
from prenv.naming import LABEL_SHA
from prenv.stackconfig import Probe, ServiceSpec


@dataclass(frozen=True)
class PreviewAppArgs:
    namespace: pulumi.Input[str]
    services: list[ServiceSpec]
    image_repository: str
    image_tag: str
    pull_policy: str
    sha: str
    pr: int
    public_url: str
    labels: dict[str, str]
    rollout_timeout: str = "3m"  # a pulumi custom timeout: 90s, 3m
    database_secret: pulumi.Input[str] | None = None  # name of a Secret with key DATABASE_URL
    env_secret: pulumi.Input[str] | None = None  # name of a Secret whose keys become env vars
    pull_secret: pulumi.Input[str] | None = None  # name of a docker-registry Secret: the pods' imagePullSecrets
    after: list[pulumi.Resource] = field(default_factory=list)  # what must finish before a rollout (the migration)
    asleep: bool = False  # the environment sleeps (prenv.sleep): every Deployment at 0 replicas, Services stay


class PreviewApp(pulumi.ComponentResource):
    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]

    def __init__(self, name: str, args: PreviewAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:app:PreviewApp", name, None, opts)
        self.deployments = {}
        self.services = {}
        for svc in args.services:
            selector = {"app.kubernetes.io/name": svc.name, "app.kubernetes.io/instance": name}
            labels = {**args.labels, **selector}
            self.deployments[svc.name] = k8s.apps.v1.Deployment(
                f"{name}-{svc.name}",
                metadata=metadata(svc.name, args.namespace, labels),
                spec=k8s.apps.v1.DeploymentSpecArgs(
                    replicas=0 if args.asleep else 1,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations={LABEL_SHA: args.sha}),
                        spec=k8s.core.v1.PodSpecArgs(
                            automount_service_account_token=False,
                            image_pull_secrets=(
                                [k8s.core.v1.LocalObjectReferenceArgs(name=args.pull_secret)]
                                if args.pull_secret is not None
                                else None
                            ),
                            containers=[_container(svc, args)],
                        ),
                    ),
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=args.after,
                    custom_timeouts=pulumi.CustomTimeouts(create=args.rollout_timeout, update=args.rollout_timeout),
                ),
            )
            self.services[svc.name] = k8s.core.v1.Service(
                f"{name}-{svc.name}-svc",
                metadata=metadata(svc.name, args.namespace, labels, SERVICE_AWAIT),
                spec=k8s.core.v1.ServiceSpecArgs(
                    selector=selector,
                    ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port=svc.port)],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"deployments": list(self.deployments)})


def _container(svc: ServiceSpec, args: PreviewAppArgs) -> k8s.core.v1.ContainerArgs:
    given = {
        "PUBLIC_URL": args.public_url,
        "PRENV_PR": str(args.pr),
        "PRENV_SHA": args.sha,
        **({} if "PORT" in svc.env else {"PORT": str(svc.port)}),
    }
    env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in given.items()]
    env += [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(svc.env.items())]
    if args.database_secret is not None:
        env.append(
            k8s.core.v1.EnvVarArgs(
                name="DATABASE_URL",
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=args.database_secret, key="DATABASE_URL")
                ),
            )
        )
    env_from = None
    if args.env_secret is not None:
        env_from = [k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=args.env_secret))]
    r = svc.resources
    return k8s.core.v1.ContainerArgs(
        name=svc.name,
        image=f"{svc.image or args.image_repository}:{args.image_tag}",
        image_pull_policy=args.pull_policy,
        command=svc.command,
        args=svc.args,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=svc.port)],
        env=env,
        env_from=env_from,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": r.cpu, "memory": r.memory},
            limits={"cpu": r.cpu_limit, "memory": r.memory_limit},
        ),
        termination_message_policy="FallbackToLogsOnError",
        readiness_probe=_probe(svc.readiness, svc.port),
        liveness_probe=_probe(svc.liveness, svc.port),
    )


def _probe(probe: Probe | None, port: int) -> k8s.core.v1.ProbeArgs | None:
    if probe is None:
        return None
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=probe.path, port=port),
        initial_delay_seconds=probe.initial_delay_seconds,
        period_seconds=probe.period_seconds,
    )
