"""Idle cost and driver memory: 200 open PRs, all deployed and unchanged.

Setup (timed, reported, not a target): 200 PRs labelled ``preview`` on the fake GitHub, deployed for real by the
driver's reconciler at parallelism 4 (200 namespaces, deployments, ingresses and databases).

Idle cost: a full resync — exactly what ``prenv serve`` runs every ``resync_seconds`` — measured in this process,
``resyncs`` times: wall time, pulumi processes started (every ``subprocess.Popen`` of the pulumi binary is counted),
requests to GitHub (the fake server's request log) and CPU seconds (this process and its children, from
``getrusage``). Beside it:

- the **floor**: what learning "who is deployed" costs at least — one API list of the prenv namespaces (label
  ``prenv.dev/managed-by=prenv``, the Kubernetes client in this process) plus one listing of the backend's
  checkpoints;
- the **baseline** (not a floor): the same listing through the Automation API alone (``pulumi stack ls`` plus one
  ``pulumi stack output`` per stack), the way a driver without direct checkpoint reading learns what is deployed.

Driver memory: RSS of a ``prenv serve`` process once its first resync (over the 200) is done and it is idle,
beside the floor of a Python process that only imports the same modules.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import probes
from bench.conditions import Context, summarise
from bench.serve import ServeProcess
from bench.world import CLUSTER_DESCRIPTION, REPOSITORY, SEED_DESCRIPTION, WEBHOOK_SECRET, World
from prenv.cluster.bootstrap import api_client, wait_until
from prenv.gateway.cloud import CloudGateway
from prenv.model import ActionKind
from prenv.procs import free_port, rss_bytes
from testsupport.spy import pulumi_commands

PRS = 200
TARGET_PULUMI_PROCESSES = 0
TARGET_GITHUB_REQUESTS = 3
TARGET_RSS_MIB = 150


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _driver(w: World, config: Path) -> Any:
    import os

    from prenv import driver, settings

    os.environ.update(w.env())  # the driver reads its secrets and KUBECONFIG from the environment, as in production
    return driver.build(settings.load(config))


PARALLELISM = 4


def run(
    w: World, ctx: Context, prs: int = PRS, resyncs: int = 5, first_pr: int = 5000, progress: Any = print
) -> dict[str, Any]:
    config = w.write_config("idle", parallelism=PARALLELISM, workers=PARALLELISM)
    numbers = list(range(first_pr, first_pr + prs))
    for n in numbers:
        w.github.add_pull(REPOSITORY, n, labels=["preview"])
    d = _driver(w, config)

    progress(f"  deploying {prs} environments at parallelism {PARALLELISM} (setup)…")
    t0 = time.perf_counter()
    result = d.reconciler.sync()
    setup_s = time.perf_counter() - t0
    failed = [o.action.pr for o in result.outcomes if not o.ok]
    if failed:  # one retry pass for the odd temporary error; the benchmark needs all 200 deployed
        d.reconciler.forget_failures()
        result = d.reconciler.sync()
        failed = [o.action.pr for o in result.outcomes if not o.ok]
    states = {s.pr: s for s in d.gateway.list_stacks()}
    deployed = sum(1 for n in numbers if n in states and states[n].result == "succeeded")
    progress(f"  {deployed}/{prs} deployed in {setup_s:.0f}s")

    conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=None, samples=resyncs)
    walls, cpus, requests, processes = [], [], [], []
    unchanged = 0
    for _ in range(resyncs):
        calls_before = w.github.calls()
        cpu_before = _cpu()
        with pulumi_commands() as started:
            t0 = time.perf_counter()
            idle = d.reconciler.sync()
            walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - cpu_before)
        requests.append(w.github.calls() - calls_before)
        processes.append(len(started))
        unchanged = len(idle.plan.of(ActionKind.UNCHANGED))
    wall = summarise(walls, 3)
    progress(f"  idle resync: {wall['median_s']}s, {max(processes)} pulumi processes, {max(requests)} GitHub requests")

    # The floor: one API list of the prenv namespaces and one listing of the backend's checkpoints, in this process
    # like the resync (a kubectl process would cost more than the resync itself).
    api = api_client(w.cluster.kubeconfig)
    core = client.CoreV1Api(api)
    floor_walls = []
    try:
        for _ in range(resyncs):
            t0 = time.perf_counter()
            core.list_namespace(label_selector="prenv.dev/managed-by=prenv")
            listed_checkpoints = len(probes.Probe.backend_of(w.backend_dir).stack_names())
            floor_walls.append(time.perf_counter() - t0)
    finally:
        api.close()
    floor = summarise(floor_walls, 3)
    progress(f"  floor (API list + checkpoint listing): {floor['median_s']}s")

    # The baseline: the same listing through the Automation API, as the gateway for a Pulumi Cloud backend lists.
    gw = d.gateway
    automation = CloudGateway(gw.project_dir, gw.backend_url, gw.env, pulumi_root=gw.pulumi_root)
    with pulumi_commands() as baseline:
        t0 = time.perf_counter()
        listed = automation.list_stacks()
        baseline_wall = time.perf_counter() - t0
    progress(f"  baseline (Automation API listing): {baseline_wall:.1f}s, {len(baseline)} pulumi processes")
    row_conditions = ctx.end(conditions)

    memory_conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=None, samples=1)
    memory = _memory(w, config)
    return {
        "idle": {
            "prs": prs,
            "deployed": deployed,
            "unchanged": unchanged,
            "setup_deploy_s": round(setup_s),
            "setup_failed": failed,
            "resyncs": resyncs,
            "wall": wall,
            "pulumi_processes": max(processes),
            "github_requests": max(requests),
            "cpu_s": round(max(cpus), 2),
            "floor": {**floor, "what": "one API list of the prenv namespaces + one checkpoint listing"},
            "floor_checkpoints_listed": listed_checkpoints,
            "ratio": round(wall["median_s"] / floor["median_s"], 1) if floor["median_s"] else None,
            "baseline": {
                "what": "Automation API: pulumi stack ls + pulumi stack output per stack",
                "wall_s": round(baseline_wall, 1),
                "pulumi_processes": len(baseline),
                "stacks_listed": len(listed),
            },
            "baseline_ratio": round(baseline_wall / wall["median_s"], 1) if wall["median_s"] else None,
            "target_pulumi_processes": TARGET_PULUMI_PROCESSES,
            "target_github_requests": TARGET_GITHUB_REQUESTS,
            "conditions": row_conditions,
        },
        "memory": {**memory, "conditions": ctx.end(memory_conditions)},
    }


def _memory(w: World, config: Path) -> dict[str, Any]:
    port = free_port()
    service = ServeProcess(config, w.env(), port, w.root / "serve-idle.log", WEBHOOK_SECRET)
    t0 = time.perf_counter()
    service.start()  # ready = its first full resync over the 200 is done
    first_resync = time.perf_counter() - t0
    time.sleep(5)
    metrics = service.metrics()
    rss, peak = rss_bytes(service.pid), rss_bytes(service.pid, "VmHWM")
    tracked = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("prenv_environments{") and not line.startswith("#")
    )
    service.stop()

    floor = subprocess.Popen(
        [sys.executable, "-c", "import prenv.service.runner, prenv.driver, prenv.sources.github, time; time.sleep(60)"],
        cwd=w.project_dir,
    )
    try:
        wait_until("floor process", lambda: rss_bytes(floor.pid) > 0, timeout=10)
        time.sleep(8)  # imports done
        floor_rss = rss_bytes(floor.pid)
    finally:
        floor.kill()
        floor.wait()
    return {
        "tracked_environments": int(tracked),
        "serve_start_to_ready_s": round(first_resync, 1),
        "rss_mib": round(rss / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "floor_rss_mib": round(floor_rss / 2**20, 1),
        "target_rss_mib": TARGET_RSS_MIB,
    }
