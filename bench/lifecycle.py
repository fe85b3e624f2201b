"""Time to ready and teardown: a reviewer's wait, from the webhook to a usable environment and back to nothing.

Each run: a PR labelled ``preview`` appears on the fake GitHub and its ``labeled`` webhook is posted to a running
``prenv serve``; the clock stops when the environment is ready (see bench.probes). Then the PR is closed and its
``closed`` webhook posted; the clock stops when namespace, database, role and stack are all gone. Beside each run,
the floor: the same objects and SQL without prenv (bench.probes.floor_up / floor_down).
"""

from __future__ import annotations

import time
from typing import Any

from bench import probes
from bench.conditions import Context, summarise
from bench.serve import ServeProcess
from bench.world import CLUSTER_DESCRIPTION, REPOSITORY, SEED_DESCRIPTION, WEBHOOK_SECRET, World
from prenv.cluster.bootstrap import api_client, wait_until
from prenv.procs import free_port
from testsupport.github_server import pr_template

TARGET_READY_MEDIAN_S = 15.0
TARGET_READY_RATIO = 4.0
TARGET_TEARDOWN_S = 30.0


def event(action: str, number: int, *, label: str | None = "preview") -> dict[str, Any]:
    """A ``pull_request`` webhook payload for PR ``number`` of the benchmark repository."""
    pr = pr_template()
    pr["number"] = number
    payload: dict[str, Any] = {
        "action": action,
        "number": number,
        "pull_request": pr,
        "repository": {"full_name": REPOSITORY},
    }
    if action in ("labeled", "unlabeled") and label:
        payload["label"] = {"name": label}
    return payload


PARALLELISM = 2


def run(w: World, ctx: Context, runs: int = 20, first_pr: int = 1000, progress: Any = print) -> dict[str, Any]:
    conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=PARALLELISM, samples=runs)
    env = w.env()
    api = api_client(w.cluster.kubeconfig)
    probe = probes.Probe(api, w.postgres.dsn, w.backend_dir)
    port = free_port()
    config = w.write_config("serve-lifecycle", parallelism=PARALLELISM, workers=PARALLELISM, port=port)
    service = ServeProcess(config, env, port, w.root / "serve-lifecycle.log", WEBHOOK_SECRET)
    service.start()
    ready, announced, floor_ready, teardown, floor_teardown = [], [], [], [], []
    objects: list[dict[str, Any]] | None = None
    repo = w.github.repo(REPOSITORY)
    try:
        for i in range(runs):
            n = first_pr + i
            ns = f"pr-{n}"
            w.github.add_pull(REPOSITORY, n, labels=["preview"])
            t0 = time.perf_counter()
            status = service.webhook("pull_request", event("labeled", n))
            if status != 202:
                raise RuntimeError(f"webhook answered {status}")
            wait_until(f"{ns} ready", lambda ns=ns: probe.ready(ns), timeout=600)  # type: ignore[misc]
            ready.append(time.perf_counter() - t0)
            wait_until(f"PR {n} comment saying ready", lambda n=n: says(repo, n, "ready"), timeout=120)  # type: ignore[misc]
            announced.append(time.perf_counter() - t0)
            if objects is None:
                objects = probes.render(api, ns)

            floor_ns = f"floor-{n}"
            t0 = time.perf_counter()
            probes.floor_up(objects, floor_ns, w.postgres.dsn, probe, env)
            floor_ready.append(time.perf_counter() - t0)

            w.github.close_pull(REPOSITORY, n)
            t0 = time.perf_counter()
            service.webhook("pull_request", event("closed", n, label=None))
            wait_until(f"PR {n} torn down", lambda n=n: probe.gone(n), timeout=600)  # type: ignore[misc]
            teardown.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            probes.floor_down(floor_ns, w.postgres.dsn, probe, env)
            floor_teardown.append(time.perf_counter() - t0)
            progress(
                f"  run {i + 1}/{runs}: ready {ready[-1]:.1f}s (floor {floor_ready[-1]:.1f}s), "
                f"teardown {teardown[-1]:.1f}s (floor {floor_teardown[-1]:.1f}s)"
            )
    finally:
        service.stop()
        api.close()
    r, f = summarise(ready), summarise(floor_ready)
    td, ftd = summarise(teardown), summarise(floor_teardown)
    return {
        "runs": runs,
        "conditions": ctx.end(conditions),
        "time_to_ready": {
            **r,
            "announced": summarise(announced),
            "floor": f,
            "ratio": round(r["median_s"] / f["median_s"], 2),
            "target_median_s": TARGET_READY_MEDIAN_S,
            "target_ratio": TARGET_READY_RATIO,
            "samples_s": [round(x, 2) for x in ready],
        },
        "teardown": {
            **td,
            "floor": ftd,
            "ratio": round(td["median_s"] / ftd["median_s"], 2),
            "target_median_s": TARGET_TEARDOWN_S,
            "samples_s": [round(x, 2) for x in teardown],
        },
    }


def says(repo: Any, n: int, word: str) -> bool:
    comments = repo.comments.get(n) or []
    return bool(comments) and word in str(comments[0].get("body", "")).lower()
