"""PreviewEnvironment: everything one PR gets — namespace, database, secrets, app and ingress — from one StackConfig.

The app is the built-in shape (``app.kind: services``, components/app.py) or the team's own chart, Kustomize
directory or manifests (components/workload.py), checked by ``workload.prepare`` before this component is built.

Outputs ``url``, ``namespace``, ``database`` and ``sha``; the driver records the sha and config hash it deployed so an
unchanged PR costs no pulumi run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app import PreviewApp, PreviewAppArgs
from components.database import PreviewDatabase, PreviewDatabaseArgs
from components.ingress import PreviewIngress, PreviewIngressArgs
from components.ingress import Route as IngressRoute
from components.meta import metadata
from components.migration import PreviewMigration, PreviewMigrationArgs
from components.namespace import PreviewNamespace, PreviewNamespaceArgs
from components.secrets import PreviewSecrets, PreviewSecretsArgs
from components.workload import Prepared, PreviewWorkload, PreviewWorkloadArgs
from prenv import naming
from prenv.stackconfig import StackConfig

DATABASE_SECRET = "prenv-database"  # noqa: S105 - a Secret object name


@dataclass(frozen=True)
class PreviewEnvironmentArgs:
    config: StackConfig
    created_at: str
    admin_dsn: pulumi.Input[str] | None = None  # required when the database is enabled
    app_secrets: dict[str, str] | None = None  # fetched staging secrets, when a secrets source is configured
    wildcard_cert: pulumi.Input[str] | None = None
    wildcard_key: pulumi.Input[str] | None = None
    workload: Prepared | None = None  # app.kind helm, kustomize or manifests: checked by workload.prepare first
    pull_secret_config: pulumi.Input[str] | None = None  # .dockerconfigjson from the shared stack (image.pullSecret)


class PreviewEnvironment(pulumi.ComponentResource):
    url: pulumi.Output[str]
    namespace: pulumi.Output[str]
    database: pulumi.Output[str | None]
    sha: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewEnvironmentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:environment:PreviewEnvironment", name, None, opts)
        cfg, t = args.config, args.config.template
        labels = naming.labels(cfg.pr.pr, cfg.pr.sha, cfg.pr.author, args.created_at, t.ttl)
        ns_labels = {k: v for k, v in labels.items() if k != naming.LABEL_SHA}
        common = {k: v for k, v in ns_labels.items() if k != naming.LABEL_CREATED_AT}
        # The database comes first: it is the step most likely to fail (an unreachable server), and failing
        # before anything is created in the cluster leaves nothing half-made.
        db: PreviewDatabase | None = None
        self.database = pulumi.Output.from_input(None)
        if t.database.enabled:
            if args.admin_dsn is None:
                raise ValueError("database is enabled but no admin DSN was given")
            db = PreviewDatabase(
                f"{name}-database",
                PreviewDatabaseArgs(
                    admin_dsn=args.admin_dsn,
                    database=cfg.database_name,
                    template=t.database.template,
                    seed_sql=t.database.seed_sql,
                    app_host=t.database.app_host,
                    app_port=t.database.app_port,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            self.database = db.database
        ns = PreviewNamespace(
            f"{name}-namespace",
            PreviewNamespaceArgs(
                name=cfg.namespace,
                labels=ns_labels,
                quota=t.quota,
                limits=t.limits,
                ingress_namespace=t.ingress.controller_namespace,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[db] if db else []),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])

        database_secret: pulumi.Output[str] | None = None
        app_inputs: list[pulumi.Resource] = []  # Secrets the app reads, created before a workload's objects
        if db is not None:
            secret = k8s.core.v1.Secret(
                f"{name}-database-secret",
                metadata=metadata(DATABASE_SECRET, ns.name, common),
                string_data={"DATABASE_URL": db.url},
                opts=in_ns,
            )
            database_secret = secret.metadata.name
            app_inputs.append(secret)

        env_secret: pulumi.Output[str] | None = None
        if args.app_secrets is not None:
            secrets = PreviewSecrets(
                f"{name}-secrets",
                PreviewSecretsArgs(namespace=ns.name, labels=common, values=args.app_secrets),
                in_ns,
            )
            env_secret = secrets.name
            app_inputs.append(secrets)

        pull_secret: pulumi.Output[str] | None = None
        if t.image.pull_secret:
            if args.pull_secret_config is None:
                raise ValueError("image.pullSecret needs the shared stack's registry credentials")
            registry = k8s.core.v1.Secret(
                f"{name}-pull-secret",
                metadata=metadata(t.image.pull_secret, ns.name, common),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": pulumi.Output.secret(args.pull_secret_config)},
                opts=in_ns,
            )
            pull_secret = registry.metadata.name
            app_inputs.append(registry)

        # The migration runs once the database branch and the Secrets exist, and the app rolls out only after it.
        after: list[pulumi.Resource] = []
        if t.database.migrate is not None and database_secret is not None:
            after.append(
                PreviewMigration(
                    f"{name}-migration",
                    PreviewMigrationArgs(
                        namespace=ns.name,
                        migrate=t.database.migrate,
                        image=f"{t.image.repository}:{cfg.image_tag}",
                        pull_policy=t.image.pull_policy,
                        pr=cfg.pr.pr,
                        sha=cfg.pr.sha,
                        labels=common,
                        database_secret=database_secret,
                        env_secret=env_secret,
                        pull_secret=pull_secret,
                        depends_on=[ns, *app_inputs],
                    ),
                    pulumi.ResourceOptions(parent=self),
                )
            )

        serving: list[pulumi.Resource]  # what the Ingress waits for
        if t.app.kind == "services":
            app = PreviewApp(
                f"{name}-app",
                PreviewAppArgs(
                    namespace=ns.name,
                    services=t.services,
                    image_repository=t.image.repository,
                    image_tag=cfg.image_tag,
                    pull_policy=t.image.pull_policy,
                    sha=cfg.pr.sha,
                    pr=cfg.pr.pr,
                    public_url=cfg.url,
                    labels=common,
                    database_secret=database_secret,
                    env_secret=env_secret,
                    pull_secret=pull_secret,
                    rollout_timeout=t.rollout_timeout,
                    after=after,
                    asleep=cfg.pr.asleep,
                ),
                in_ns,
            )
            serving = [app.services[r.service] for r in cfg.routes]
        else:
            if args.workload is None:
                raise ValueError(f"app.kind {t.app.kind} needs the prepared workload (components.workload.prepare)")
            workload = PreviewWorkload(
                f"{name}-workload",
                PreviewWorkloadArgs(
                    prepared=args.workload,
                    namespace=cfg.namespace,
                    labels=common,
                    depends_on=[ns, *app_inputs, *after],
                ),
                in_ns,
            )
            serving = [workload]
        routes = cfg.routes
        if routes:
            PreviewIngress(
                f"{name}-ingress",
                PreviewIngressArgs(
                    namespace=ns.name,
                    host=cfg.host,
                    service=routes[0].service,
                    port=routes[0].port,
                    routes=[IngressRoute(r.host, r.service, r.port, r.path) for r in routes],
                    class_name=t.ingress.class_name,
                    tls_mode=t.tls.mode,
                    labels=common,
                    annotations=t.ingress.annotations,
                    issuer=t.tls.issuer,
                    issuer_kind=t.tls.issuer_kind,
                    wildcard_cert=args.wildcard_cert,
                    wildcard_key=args.wildcard_key,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=serving),
            )
        self.url = pulumi.Output.from_input(cfg.url)
        self.namespace = ns.name
        self.sha = pulumi.Output.from_input(cfg.pr.sha)
        self.register_outputs(
            {"url": self.url, "namespace": self.namespace, "database": self.database, "sha": self.sha}
        )
