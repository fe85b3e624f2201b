"""PreviewMigration: the app's database migration as a Job in the PR's namespace, once per sha.

It runs after the database branch exists (it reads ``DATABASE_URL`` from the database Secret) and before the app
rolls out: the environment makes the app depend on it, and pulumi-kubernetes' Job awaiter waits for it to complete.
A failing migration fails the up at this Job, so the app's Deployment is not touched and the previous rollout keeps
serving. The Job is named after the sha, so a push runs it again and an update of the same sha does not; its
container reports its last log lines as the termination message (``FallbackToLogsOnError``), readable from the API
alone. ``backoffLimit: 0``: a migration is not retried blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.meta import metadata
from prenv.naming import LABEL_SHA
from prenv.stackconfig import Migrate

JOB_PREFIX = "prenv-migrate-"
SHA_CHARS = 12  # the Job name stays far inside 63 characters; 12 hex digits do not collide within one PR


@dataclass(frozen=True)
class PreviewMigrationArgs:
    namespace: pulumi.Input[str]
    migrate: Migrate
    image: str  # the image to run when ``migrate.image`` is not set (the app's)
    pull_policy: str
    pr: int
    sha: str
    labels: dict[str, str]
    database_secret: pulumi.Input[str]  # name of the Secret with key DATABASE_URL
    env_secret: pulumi.Input[str] | None = None
    pull_secret: pulumi.Input[str] | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def job_name(sha: str) -> str:
    return JOB_PREFIX + sha[:SHA_CHARS]


class PreviewMigration(pulumi.ComponentResource):
    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: PreviewMigrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:migration:PreviewMigration", name, None, opts)
        m = args.migrate
        env = [
            k8s.core.v1.EnvVarArgs(name="PRENV_PR", value=str(args.pr)),
            k8s.core.v1.EnvVarArgs(name="PRENV_SHA", value=args.sha),
            k8s.core.v1.EnvVarArgs(
                name="DATABASE_URL",
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=args.database_secret, key="DATABASE_URL")
                ),
            ),
        ]
        env_from = None
        if args.env_secret is not None:
            env_from = [k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=args.env_secret))]
        labels = {**args.labels, LABEL_SHA: args.sha, "app.kubernetes.io/component": "migration"}
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata=metadata(job_name(args.sha), args.namespace, labels),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=0,
                active_deadline_seconds=m.timeout_seconds,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    # The sha annotation, as on the app's pods: the driver's diagnosis of a failed up looks at the
                    # pods of the current sha, and a failing migration's pod is one of them.
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations={LABEL_SHA: args.sha}),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        image_pull_secrets=(
                            [k8s.core.v1.LocalObjectReferenceArgs(name=args.pull_secret)]
                            if args.pull_secret is not None
                            else None
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="migrate",
                                image=m.image or args.image,
                                image_pull_policy=args.pull_policy,
                                command=m.command,
                                args=m.args,
                                env=env,
                                env_from=env_from,
                                termination_message_policy="FallbackToLogsOnError",
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=args.depends_on,
                # A Job's template cannot change in place: a changed migration for the same sha is a new Job.
                replace_on_changes=["spec"],
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(
                    create=f"{m.timeout_seconds + 30}s", update=f"{m.timeout_seconds + 30}s"
                ),
            ),
        )
        self.register_outputs({"job": self.job.metadata.name})
