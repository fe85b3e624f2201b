"""The driver in the cluster, for real: ``pulumi up -s driver`` on the embedded cluster's real node, webhooks through
the ingress, failover between two replicas.

The driver image is built here (devtools/driverimage.py) with this module's project baked in and loaded into the
node; the state backend is moto's S3 server and GitHub is the fake server, both listening on the node's bridge so
that the pods reach them, as PostgreSQL does. A test signs deliveries and posts them to the driver's Ingress
(``https://prenv.preview.test/webhooks/github`` through Traefik, wildcard certificate of the cluster's CA); the
replica that receives one either acts (the leader) or relays it to the leader. Then the leader is deleted while
idle, deleted again while it runs a ``pulumi up`` (which must finish before the pod exits and before the other
replica leads), and its process killed with SIGKILL (nothing releases the Lease); each time the other replica must
take the Lease and act. The takeover times are printed (``-s`` shows them; they are figures, not assertions); the
close of every PR and the teardown of both stacks leave nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from moto.server import ThreadedMotoServer
from pulumi import automation as auto

from devtools import realnode
from prenv.cluster.bootstrap import api_client
from prenv.procs import free_port
from tests.fixtures.driver import Driver
from tests.fixtures.driver_stack import SystemStacks
from tests.fixtures.preview import unique_pr
from tests.fixtures.realnode import BASE_DOMAIN, RealWorld, host
from testsupport.github_server import FakeGitHub
from testsupport.service_harness import REPOSITORY, SECRET, encode, for_pr, headers

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DRIVER_HOST = f"prenv.{BASE_DOMAIN}"
NAMESPACE = "prenv-system"
LEASE = "prenv-driver"
LEASE_SECONDS = 15.0  # serve.leader_election.lease_seconds, the default the driver runs with
PASSPHRASE = "driver-e2e-passphrase"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class InCluster:
    world: RealWorld
    github: FakeGitHub
    core: client.CoreV1Api
    leases: client.CoordinationV1Api
    s3: Any
    bucket: str

    def deliver(self, action: str, n: int) -> dict[str, Any]:
        """A signed ``pull_request`` delivery posted to the driver's Ingress; the answer's JSON."""
        body = encode(for_pr(action, n))
        response = realnode.post(self.world.info, DRIVER_HOST, "/webhooks/github", body, headers(body))
        assert response.status_code == 202, f"{action} {n}: HTTP {response.status_code} {response.text[:300]}"
        return dict(response.json())

    def identity(self) -> str | None:
        """The Lease's holder identity, as the elector wrote it."""
        try:
            return self.leases.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity or None
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def holder(self) -> str | None:
        """The pod holding the driver's Lease (its identity is ``<pod name>-<8 hex>``)."""
        try:
            spec = self.leases.read_namespaced_lease(LEASE, NAMESPACE).spec
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return spec.holder_identity.rsplit("-", 1)[0] if spec.holder_identity else None

    def pods(self) -> list[client.V1Pod]:
        selector = "app.kubernetes.io/name=prenv-driver"
        return [
            p
            for p in self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            if p.metadata.deletion_timestamp is None
        ]

    def ready_pods(self) -> list[str]:
        return [
            p.metadata.name
            for p in self.pods()
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]

    def locked(self, n: int) -> bool:
        """Whether pulumi holds the lock of stack ``pr-<n>`` in the S3 backend (an operation runs)."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f".pulumi/locks/organization/prenv/pr-{n}/")
        return bool(listed.get("Contents"))

    def pending_operations(self, n: int) -> list[Any]:
        key = f".pulumi/stacks/prenv/pr-{n}.json"
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return list(json.loads(body).get("checkpoint", {}).get("latest", {}).get("pending_operations") or [])

    def logs(self) -> str:
        out = []
        for p in self.core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=prenv-driver").items:
            try:
                out.append(
                    f"--- {p.metadata.name}\n" + self.core.read_namespaced_pod_log(p.metadata.name, NAMESPACE)[-4000:]
                )
            except ApiException as e:
                out.append(f"--- {p.metadata.name}: no log ({e.status})")
        return "\n".join(out)


def wait(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> float:
    """Seconds until ``condition()`` is truthy; AssertionError naming ``what`` after ``timeout``."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t0


@contextmanager
def s3_on_bridge(address: str) -> Iterator[tuple[str, Any, str]]:
    """moto's S3 server on the node's bridge address: a versioned bucket; (backend URL, client, bucket)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{address}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        bucket = f"prenv-driver-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield (
            f"s3://{bucket}?region=us-east-1&endpoint={address}:{port}&disableSSL=true&s3ForcePathStyle=true",
            s3,
            bucket,
        )
    finally:
        server.stop()


@pytest.mark.timeout(2400)
def test_the_driver_installed_with_pulumi_up_acts_on_webhooks_through_the_ingress_and_fails_over(
    world: RealWorld, tmp_path: Path
) -> None:
    from devtools import driverimage

    bridge = world.db_host  # the host's address on the node's bridge: pods reach it
    project = realnode.write_project(tmp_path / "project", world.cluster, BASE_DOMAIN, bridge)
    image = driverimage.build(tmp_path / "img", ref=f"prenv.local/prenv:e2e-{uuid.uuid4().hex[:6]}", project=project)
    world.cluster.load_image(image)
    a, b, c = unique_pr(), unique_pr(), unique_pr()
    world.load(a, b, c)

    with (
        s3_on_bridge(bridge) as (backend, s3, bucket),
        FakeGitHub(host=bridge) as github,
        api_client(world.info.kubeconfig) as api,
    ):
        env = {**world.env(), **AWS, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
        stacks = SystemStacks(project, backend, env)
        ic = InCluster(world, github, client.CoreV1Api(api), client.CoordinationV1Api(api), s3, bucket)
        repo = github.add_repo(REPOSITORY)
        try:
            stacks.up_shared()
            up = install_driver(stacks, image.ref, github.base_url, backend, world.postgres.dsn_for("postgres", bridge))
            assert up.outputs["webhookUrl"].value == f"https://{DRIVER_HOST}/webhooks/github"

            # Two replicas, non-root, both Ready (the follower at once, the leader after its first resync).
            assert len(ic.ready_pods()) == 2
            assert all(p.spec.security_context.run_as_user == 10001 for p in ic.pods())
            wait(ic.holder, 60, "a leader")
            leader = ic.holder()
            assert leader in ic.ready_pods()

            # A webhook through the ingress: whichever replica gets it, the leader brings PR a up.
            github.add_pull(REPOSITORY, a, sha="a" * 40, labels=["preview"])
            assert ic.deliver("labeled", a) == {"result": "queued", "pr": a}
            page = world.page(a, f'<code id="sha">{"a" * 40}</code>', timeout=300)
            assert "<td>teapot</td>" in page.body  # its database branch, made by the driver in the pod
            wait(lambda: f"https://{host(a)}" in str(repo.comments.get(a)), 60, "the PR comment with the URL")

            # Deliveries reach both replicas (the Service spreads connections): each is acted on once, by the leader.
            for _ in range(4):
                github.add_pull(REPOSITORY, b, sha="b" * 40, labels=["preview"])
                assert ic.deliver("labeled", b)["result"] in ("queued", "duplicate")
            world.page(b, f'<code id="sha">{"b" * 40}</code>', timeout=300)

            # 1. The idle leader is deleted: it drains, gives the Lease up, the other replica takes it at once.
            figures: dict[str, float] = {}
            figures["takeover after deleting the idle leader (s)"] = failover(ic, leader)
            github.add_pull(REPOSITORY, a, sha="c" * 40, labels=["preview"])
            ic.deliver("synchronize", a)
            world.page(a, f'<code id="sha">{"c" * 40}</code>', timeout=300)
            wait(lambda: len(ic.ready_pods()) == 2, 180, "the Deployment's replacement replica")

            # 2. SIGTERM during a pulumi operation: the up of PR c finishes before the pod exits, and only then does
            # the other replica lead.
            leader = ic.holder()
            assert leader is not None
            github.add_pull(REPOSITORY, c, sha="d" * 40, labels=["preview"])
            ic.deliver("labeled", c)
            wait(lambda: not namespace_gone(ic.core, f"pr-{c}"), 180, f"the leader's up of pr-{c} to be under way")
            assert not world.page_shows(c, "d" * 40), "the up is still running when its pod is told to stop"
            t0 = time.monotonic()
            ic.core.delete_namespaced_pod(leader, NAMESPACE)
            seen = first_seen(
                {
                    "ready": lambda: world.page_shows(c, "d" * 40),
                    "pod gone": lambda: pod_gone(ic.core, leader),
                    "takeover": lambda: ic.holder() not in (None, leader),
                },
                timeout=660,
            )
            figures["environment ready after SIGTERM mid-up (s)"] = seen["ready"] - t0
            figures["old leader's pod gone after SIGTERM (s)"] = seen["pod gone"] - t0
            figures["takeover after SIGTERM mid-up (s)"] = seen["takeover"] - t0
            assert seen["ready"] <= seen["pod gone"], "the pod exited before its pulumi up finished"
            assert seen["ready"] <= seen["takeover"], "the other replica led while the up still ran"
            assert not ic.locked(c) and ic.pending_operations(c) == []

            # 3. The leader's process is killed (SIGKILL, as the OOM killer would): nothing releases the Lease, so the
            # other replica takes it once it has not been renewed for its duration, as that replica observed it.
            wait(lambda: len(ic.ready_pods()) == 2, 180, "the replacement replica")
            identity = ic.identity()
            assert identity is not None
            (pod,) = [p for p in ic.pods() if identity.startswith(p.metadata.name + "-")]
            t0 = time.monotonic()
            os.kill(world.container_pid(pod.status.container_statuses[0].container_id), signal.SIGKILL)
            wait(lambda: ic.identity() not in (None, identity), LEASE_SECONDS * 3, "another replica to lead")
            figures["takeover after SIGKILL of the leader (s)"] = time.monotonic() - t0
            github.close_pull(REPOSITORY, a)
            github.close_pull(REPOSITORY, b)
            github.close_pull(REPOSITORY, c)
            for n in (a, b, c):
                ic.deliver("closed", n)
            wait(lambda: all(namespace_gone(ic.core, f"pr-{n}") for n in (a, b, c)), 400, "the teardowns")
            print("\nin-cluster driver failover on the real node (1 sample each):")
            for name, value in figures.items():
                print(f"  {name}: {value:.1f}")
        except BaseException:
            print(ic.logs())
            raise
        finally:
            (tmp_path / "cleanup").mkdir(exist_ok=True)
            leftovers = Driver(tmp_path / "cleanup", project, backend, env)
            stacks.destroy("driver")  # the pods go first: nothing acts while the rest is cleaned up
            leftovers.open([])
            done = leftovers.run("sync")
            assert done.returncode == 0, done.stderr[-2000:]
            stacks.destroy("shared")
    assert not Path("/tmp/prenv-e2e-pwned").exists()


def install_driver(stacks: SystemStacks, image: str, github_url: str, backend: str, admin_dsn: str) -> auto.UpResult:
    """``pulumi up -s driver``: two replicas of the image, GitHub source on the fake server, state in S3, the
    webhook Ingress at DRIVER_HOST; credentials as secret config."""
    config = {
        "source": {"type": "github", "github": {"repository": REPOSITORY, "base_url": github_url}},
        "filters": {"labels": ["preview"]},
        "state": {"backend": backend},
        "serve": {"resync_seconds": 3600, "feedback": {"enabled": True}},
    }
    stack = stacks.stack("driver")
    secret = {
        "prenv:githubToken": "ghp_fake_token_for_tests",
        "prenv:webhookSecret": SECRET.decode(),
        "prenv:databaseAdminDsn": admin_dsn,
        "prenv:pulumiPassphrase": PASSPHRASE,
        "prenv:awsAccessKeyId": "testing",
        "prenv:awsSecretAccessKey": "testing",
    }
    plain = {
        "prenv:driverImage": image,
        "prenv:driverReplicas": "2",
        "prenv:driverConfig": json.dumps(config),
        "prenv:sharedStack": realnode.SHARED_STACK,
        "prenv:driverHost": DRIVER_HOST,
    }
    stack.set_all_config(
        {
            **{k: auto.ConfigValue(v) for k, v in plain.items()},
            **{k: auto.ConfigValue(v, secret=True) for k, v in secret.items()},
        }
    )
    return stack.up(color="never", suppress_progress=True)


def failover(ic: InCluster, leader: str | None) -> float:
    """Delete the leader's pod (SIGTERM, its grace period) and return the seconds until another pod holds the Lease."""
    assert leader is not None
    t0 = time.monotonic()
    ic.core.delete_namespaced_pod(leader, NAMESPACE)
    wait(lambda: ic.holder() not in (None, leader), LEASE_SECONDS * 3, f"a replica other than {leader} to lead")
    return time.monotonic() - t0


def first_seen(conditions: dict[str, Callable[[], bool]], timeout: float) -> dict[str, float]:
    """The monotonic time each condition was first seen true, polling all of them in turn until each was."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(conditions):
        for name, condition in conditions.items():
            if name not in seen and condition():
                seen[name] = time.monotonic()
        assert time.monotonic() < deadline, f"not seen within {timeout:.0f}s: {sorted(set(conditions) - set(seen))}"
        time.sleep(0.2)
    return seen


def pod_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NAMESPACE)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False
