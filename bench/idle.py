"""Idle cost and driver memory: 200 open PRs, all deployed and unchanged.

Setup (timed, reported, not a target): 200 PRs labelled ``preview`` on the fake GitHub, deployed for real by the
driver's reconciler at parallelism 4 (200 namespaces, deployments, ingresses and databases).

Idle cost: one full resync — exactly what ``prenv serve`` runs every ``resync_seconds`` — measured in this process:
wall time, pulumi processes started (every ``subprocess.Popen`` of the pulumi binary is counted), requests to
GitHub (the fake server's request log) and CPU seconds (this process and its children, from ``getrusage``). The
floor beside it is what the same listing costs through the Automation API alone (``pulumi stack ls`` plus one
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

from bench.serve import ServeProcess
from bench.world import REPOSITORY, WEBHOOK_SECRET, World
from prenv.cluster.bootstrap import wait_until
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


def run(w: World, prs: int = PRS, first_pr: int = 5000, progress: Any = print) -> dict[str, Any]:
    config = w.write_config("idle", parallelism=4, workers=4)
    numbers = list(range(first_pr, first_pr + prs))
    for n in numbers:
        w.github.add_pull(REPOSITORY, n, labels=["preview"])
    d = _driver(w, config)

    progress(f"  deploying {prs} environments at parallelism 4 (setup)…")
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

    calls_before = w.github.calls()
    cpu_before = _cpu()
    with pulumi_commands() as started:
        t0 = time.perf_counter()
        idle = d.reconciler.sync()
        wall = time.perf_counter() - t0
    cpu = _cpu() - cpu_before
    requests = w.github.calls() - calls_before
    unchanged = len(idle.plan.of(ActionKind.UNCHANGED))
    progress(f"  idle resync: {wall:.2f}s, {len(started)} pulumi processes, {requests} GitHub requests")

    # The floor: the same listing through the Automation API, as the gateway for a Pulumi Cloud backend lists.
    gw = d.gateway
    automation = CloudGateway(gw.project_dir, gw.backend_url, gw.env, pulumi_root=gw.pulumi_root)
    with pulumi_commands() as floor:
        t0 = time.perf_counter()
        listed = automation.list_stacks()
        floor_wall = time.perf_counter() - t0
    progress(f"  Automation API listing: {floor_wall:.1f}s, {len(floor)} pulumi processes")

    memory = _memory(w, config)
    return {
        "idle": {
            "prs": prs,
            "deployed": deployed,
            "unchanged": unchanged,
            "setup_deploy_s": round(setup_s),
            "setup_failed": failed,
            "wall_s": round(wall, 3),
            "pulumi_processes": len(started),
            "github_requests": requests,
            "cpu_s": round(cpu, 2),
            "floor_wall_s": round(floor_wall, 1),
            "floor_pulumi_processes": len(floor),
            "floor_stacks_listed": len(listed),
            "ratio": round(floor_wall / wall, 1) if wall else None,
            "target_pulumi_processes": TARGET_PULUMI_PROCESSES,
            "target_github_requests": TARGET_GITHUB_REQUESTS,
        },
        "memory": memory,
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
