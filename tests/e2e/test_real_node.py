"""End to end on the embedded cluster's real node: the example app really runs, and reviewers open it over HTTPS.

The real ``prenv`` CLI deploys the shipped template (the example app: ``web`` and ``worker``, a database branch)
in wildcard TLS onto a cluster with a real kubelet; pages are fetched through Traefik as a browser would (SNI, the
local CA only), and a headless Chromium opens two of them. A PR opens, gets a push and closes; a broken one fails
within its rollout timeout and says why. The world (cluster, PostgreSQL on the node's bridge, image) is checked to
leave nothing behind (tests/fixtures/realnode.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from kubernetes import client
from psycopg import sql

from prenv import db
from prenv.cluster.bootstrap import api_client
from tests.fixtures.cluster import served_certificate
from tests.fixtures.preview import unique_pr
from tests.fixtures.realnode import BASE_DOMAIN, RealWorld, host

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

HOSTILE = {  # attacker-controlled PR metadata: it must never reach a name, a command or SQL
    "branch": "x$(touch /tmp/prenv-e2e-pwned);'; DROP DATABASE postgres; --",
    "author": "eve`id`<script>",
    "title": "<script>alert(1)</script> ' OR 1=1 --",
}


def pr(n: int, sha: str) -> dict[str, Any]:
    return {"number": n, "sha": sha * 40, "labels": ["preview"], **HOSTILE}


def add_row(world: RealWorld, n: int, name: str) -> None:
    """A row only PR ``n``'s database branch has (written as the server's superuser)."""
    with psycopg.connect(world.postgres.dsn_for(f"pr_{n}"), autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO products (name, price) VALUES ({}, 1)").format(sql.Literal(name)))


def test_a_pr_opens_serves_its_own_page_over_https_gets_a_push_and_closes_leaving_nothing(
    world: RealWorld, tmp_path: Path
) -> None:
    a, b = unique_pr(), unique_pr()
    world.load(a, b)
    with world.environments(tmp_path) as d:
        d.open([pr(a, "a"), pr(b, "b")])
        done = d.run("sync")
        assert done.returncode == 0, done.stderr[-3000:]
        listed = {e["pr"]: e for e in d.json("list")}
        assert (listed[a]["status"], listed[a]["url"]) == ("ready", f"https://{host(a)}")

        # Ready means the pods are Ready: the page answers at once, through Traefik, with the wildcard certificate
        # the cluster's CA signed (chain and name verified against that CA only).
        page = world.page(a, f"Preview of PR {a}", timeout=5)
        assert f'<code id="sha">{"a" * 40}</code>' in page.body
        assert "<td>teapot</td>" in page.body and "<td>kettle</td>" in page.body  # the seed, branched
        assert '<p id="upstream">Upstream http://worker: 200 OK</p>' in page.body  # worker by its DNS name
        san = x509.load_der_x509_certificate(
            served_certificate(world.info, host(a))
        ).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert f"*.{BASE_DOMAIN}" in san.value.get_values_for_type(x509.DNSName)

        # The API server reaches the kubelet: the app's log is there, as kubectl logs shows it.
        with api_client(world.info.kubeconfig) as api:
            core = client.CoreV1Api(api)
            (web,) = core.list_namespaced_pod(f"pr-{a}", label_selector="app.kubernetes.io/name=web").items
            log = core.read_namespaced_pod_log(web.metadata.name, f"pr-{a}")
        assert f'PR "{a}" sha "{"a" * 40}" listening on :8080' in log

        # Each PR reads its own branch: a row written to a's database shows on a's page only.
        add_row(world, a, f"only-in-{a}")
        assert f"<td>only-in-{a}</td>" in world.page(a, f"only-in-{a}").body
        assert f"only-in-{a}" not in world.page(b, f"Preview of PR {b}").body
        assert "<script>" not in page.body and "DROP DATABASE" not in page.body

        # A push rolls the pods: the new sha is served.
        d.open([pr(a, "a"), pr(b, "c")])
        assert d.run("sync").returncode == 0
        assert f'<code id="sha">{"c" * 40}</code>' in world.page(b, "c" * 40).body

        # Close: namespace, containers and database go.
        d.open([pr(b, "c")])
        assert d.run("sync").returncode == 0
        with api_client(world.info.kubeconfig) as api:
            live = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert f"pr-{a}" not in live
        # The kubelet stops the pods at once and removes their exited containers at its next garbage collection
        # (once a minute): wait for that, not a fixed time.
        assert world.wait_for_no_containers(f"pr-{a}", timeout=150) == []
        with psycopg.connect(world.postgres.dsn) as conn:
            assert not db.database_exists(conn, f"pr_{a}")
            assert not db.role_exists(conn, f"pr_{a}")
        assert [e["pr"] for e in d.json("list")] == [b]
    assert not Path("/tmp/prenv-e2e-pwned").exists()


def test_a_crashing_app_fails_within_its_rollout_timeout_and_says_why(world: RealWorld, tmp_path: Path) -> None:
    n = unique_pr()
    world.load(n)
    web = {
        "name": "web",
        "port": 8080,
        "public": True,
        "env": {"PORT": "99999"},  # the app cannot listen there: it logs why and exits 1, again and again
        "readiness": {"path": "/healthz", "periodSeconds": 2},
    }
    with world.environments(tmp_path, services=[web], rolloutTimeout="30s") as d:
        d.open([pr(n, "e")])
        done = d.run("sync")
        assert done.returncode == 1
        output = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
        assert "pods not ready: web: CrashLoopBackOff, exit code 1:" in output
        assert "listen tcp: address 99999: invalid port" in output  # the container's own last log line
        assert "postgresql://" not in output
        listed = d.json("list")
        assert [(e["pr"], e["status"]) for e in listed] == [(n, "failed")]
        assert "pods not ready: web: CrashLoopBackOff, exit code 1:" in listed[0]["error"]  # kept in the backend
        assert "invalid port" in listed[0]["error"]


def chromium(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with its own profile and HOME (whose NSS database holds the trusted CAs); every process
    of it ends with the call."""
    argv = [
        "chromium",
        "--headless",
        "--no-sandbox",  # we are root
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={home / 'profile'}",
        f"--host-resolver-rules=MAP *.{BASE_DOMAIN} 127.0.0.1",
        "--window-size=1024,768",
        *args,
    ]
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def trust(home: Path, ca: Path) -> None:
    nssdb = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    subprocess.run(["certutil", "-d", nssdb, "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-d", nssdb, "-A", "-t", "C,,", "-n", "prenv local CA", "-i", str(ca)],
        check=True,
        capture_output=True,
    )


def test_a_browser_opens_two_previews_each_showing_its_own_pr_and_rows(world: RealWorld, tmp_path: Path) -> None:
    a, b = unique_pr(), unique_pr()
    world.load(a, b)
    home = tmp_path / "home"
    home.mkdir()
    with world.environments(tmp_path / "envs") as d:
        d.open([pr(a, "a"), pr(b, "b")])
        assert d.run("sync").returncode == 0
        for n in (a, b):
            add_row(world, n, f"only-in-{n}")
            world.page(n, f"only-in-{n}")
        url = {n: f"https://{host(n)}:{world.info.ingress.https}/" for n in (a, b)}

        # Positive control of the trust: before the CA is trusted, Chromium refuses the certificate.
        untrusted = chromium(home, "--dump-dom", url[a])
        assert f"Preview of PR {a}" not in untrusted.stdout

        trust(home, world.info.ca)
        for n, other in ((a, b), (b, a)):
            shot = tmp_path / f"pr-{n}.png"
            assert chromium(home, f"--screenshot={shot}", url[n]).returncode == 0
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
            dom = chromium(home, "--dump-dom", url[n])
            assert dom.returncode == 0, dom.stderr[-2000:]
            assert f"<h1>Preview of PR {n}</h1>" in dom.stdout
            assert f"<td>only-in-{n}</td>" in dom.stdout and "<td>teapot</td>" in dom.stdout
            assert f"only-in-{other}" not in dom.stdout


def test_the_driver_image_built_here_runs_prenv_and_its_toolchain_as_a_non_root_user(
    world: RealWorld, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from devtools import driverimage

    image = driverimage.build(tmp_path_factory.mktemp("img"))
    world.cluster.load_image(image)
    checks = {
        "whoami": ["/usr/bin/id", "-u"],
        "help": ["/opt/prenv/venv/bin/prenv", "--help"],
        "engine": ["/opt/prenv/tools/bin/pulumi", "version"],
        "imports": ["/opt/prenv/venv/bin/python", "-c", "import pulumi_kubernetes, pulumi_random, prenv.driver"],
        "plugins": ["/usr/bin/ls", "/opt/prenv/tools/pulumi-home/plugins"],
        "writable": ["/usr/bin/touch", "/opt/prenv/project/Pulumi.pr-1.yaml", "/opt/prenv/tools/pulumi-home/x"],
        # The API server from a pod, with the pod's ServiceAccount token (relayed by Traefik on the bridge).
        "apiserver": [
            "/opt/prenv/venv/bin/python",
            "-c",
            "import os; from kubernetes import client, config; config.load_incluster_config(); "
            "ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read(); "
            "print('pods:', ' '.join(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod(ns).items))",
        ],
    }
    with api_client(world.info.kubeconfig) as api:
        core = client.CoreV1Api(api)
        namespace = f"img-{unique_pr()}"
        core.create_namespace({"metadata": {"name": namespace}})
        try:
            rbac = client.RbacAuthorizationV1Api(api)
            rbac.create_namespaced_role(
                namespace,
                {
                    "metadata": {"name": "read-pods"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
                },
            )
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": "read-pods"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
                    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
                },
            )
            wait_for_service_account(core, namespace)
            for name, command in checks.items():
                core.create_namespaced_pod(
                    namespace,
                    {
                        "metadata": {"name": name},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": name == "apiserver",
                            "containers": [
                                {
                                    "name": "c",
                                    "image": image.ref,
                                    "imagePullPolicy": "Never",
                                    "command": command,
                                    # kwokctl's serving certificate names kubernetes.default.svc, not 10.96.0.1.
                                    "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "kubernetes.default.svc"}],
                                    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
                                }
                            ],
                        },
                    },
                )
            logs = {}
            for name in checks:
                phase = wait_for_phase(core, namespace, name)
                logs[name] = core.read_namespaced_pod_log(name, namespace)
                assert phase == "Succeeded", f"{name}: {phase}: {logs[name][-1000:]}"
        finally:
            core.delete_namespace(namespace)
    assert logs["whoami"].strip() == "10001"
    assert "Preview environments per pull request" in logs["help"]
    assert logs["engine"].strip() == "v3.274.1"
    assert "resource-kubernetes-v4.25.0" in logs["plugins"] and "resource-random-v4.21.4" in logs["plugins"]
    assert "apiserver" in logs["apiserver"].split() and "whoami" in logs["apiserver"].split()


def wait_for_service_account(core: client.CoreV1Api, namespace: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {namespace}"
        time.sleep(0.3)


def wait_for_phase(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while True:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        if phase in ("Succeeded", "Failed") or time.monotonic() > deadline:
            return str(phase)
        time.sleep(0.5)


def test_a_migration_runs_before_the_app_and_a_failing_one_fails_the_up_while_the_old_pods_keep_serving(
    world: RealWorld, tmp_path: Path
) -> None:
    import yaml

    n = unique_pr()
    world.load(n)
    database = {"enabled": True, "namePrefix": "pr_", "template": "app_seed", "appHost": world.db_host}
    migrate = {"command": ["/app", "migrate"], "timeoutSeconds": 60}
    with world.environments(tmp_path, database={**database, "migrate": migrate}) as d:
        d.open([pr(n, "a")])
        done = d.run("sync")
        assert done.returncode == 0, done.stderr[-3000:]
        # The Job ran against this PR's branch before the app rolled out: the page lists the row it wrote.
        assert f"<td>migrated at {'a' * 40}</td>" in world.page(n, f"Preview of PR {n}", timeout=5).body

        # The next push brings a migration that fails: the up fails at the Job and says why, the app is untouched.
        template = tmp_path / "project" / "Pulumi.preview.yaml"
        doc = yaml.safe_load(template.read_text())
        doc["config"]["prenv:database"]["migrate"] = {
            "command": ["/app", "migrate", "SELECT * FROM no_such_table"],
            "timeoutSeconds": 60,
        }
        template.write_text(yaml.safe_dump(doc, sort_keys=False))
        d.open([pr(n, "b")])
        failed = d.run("sync")
        assert failed.returncode == 1
        output = " ".join((failed.stdout + failed.stderr).split())
        assert 'relation "no_such_table" does not exist' in output
        [listed] = d.json("list")
        assert listed["status"] == "failed" and 'relation "no_such_table" does not exist' in listed["error"]
        assert "postgresql://" not in listed["error"]
        page = world.page(n, f"Preview of PR {n}", timeout=5)
        assert f'<code id="sha">{"a" * 40}</code>' in page.body  # the previous rollout keeps serving


ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = {
    "image": {"repository": "{imageRepository}", "tag": "{imageTag}"},
    "pr": "{pr}",
    "sha": "{sha}",
    "url": "{url}",
    "databaseSecret": "{databaseSecret}",
}
APPS = {
    "helm": {"kind": "helm", "chart": str(ROOT / "examples/app/chart"), "service": "web", "values": CHART_VALUES},
    "kustomize": {"kind": "kustomize", "directory": str(ROOT / "examples/app/kustomize"), "service": "web"},
}


@pytest.mark.parametrize("kind", sorted(APPS))
def test_the_example_app_as_a_helm_chart_or_a_kustomize_base_really_runs_and_rolls_on_a_push(
    world: RealWorld, tmp_path: Path, kind: str
) -> None:
    n = unique_pr()
    world.load(n)
    with world.environments(tmp_path, app=APPS[kind]) as d:
        d.open([pr(n, "a")])
        done = d.run("sync")
        assert done.returncode == 0, done.stderr[-3000:]
        page = world.page(n, f"Preview of PR {n}", timeout=5)  # ready means its pods are Ready
        assert f'<code id="sha">{"a" * 40}</code>' in page.body and "<td>teapot</td>" in page.body
        d.open([pr(n, "b")])
        assert d.run("sync").returncode == 0
        assert f'<code id="sha">{"b" * 40}</code>' in world.page(n, "b" * 40, timeout=60).body
