"""Burst: 20 PRs labelled at once → all 20 environments ready, at parallelism 1, 2 and 4, three samples per level.

The webhooks are posted together to a ``prenv serve`` whose ``reconcile.parallelism`` and ``serve.workers`` are the
parallelism under test. Wall time runs from the first webhook to the last environment ready; peak memory is the
largest sum of RSS over the service's whole process tree (pulumi, language hosts, providers, programs), sampled
every 0.2 s. The floor is the same 20 environments made without prenv (bench.probes.floor_up) at the same
parallelism. One burst is one sample; each level is repeated ``samples`` times (≥ 3 in the documented run) and the
row reports the medians (wall, floor, ratio of the medians) and the largest peak.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import probes
from bench.conditions import Context, summarise
from bench.lifecycle import event
from bench.serve import ServeProcess, tree_pids
from bench.world import CLUSTER_DESCRIPTION, REPOSITORY, SEED_DESCRIPTION, WEBHOOK_SECRET, World
from prenv.cluster.bootstrap import api_client, wait_until
from prenv.procs import free_port, rss_bytes

BURST = 20


class PeakRss:
    """Samples the RSS sum of a process tree in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(rss_bytes(p) for p in tree_pids(self.pid)))
            self._stop.wait(self.interval)


def run_one(w: World, parallelism: int, first_pr: int, prs_count: int = BURST, progress: Any = print) -> dict[str, Any]:
    """One sample: ``prs_count`` PRs labelled at once, all ready; then the floor; then everything torn down."""
    env = w.env()
    api = api_client(w.cluster.kubeconfig)
    probe = probes.Probe(api, w.postgres.dsn, w.backend_dir)
    port = free_port()
    config = w.write_config(f"serve-burst-{parallelism}", parallelism=parallelism, workers=parallelism, port=port)
    service = ServeProcess(config, env, port, w.root / f"serve-burst-{parallelism}.log", WEBHOOK_SECRET)
    service.start()
    prs = list(range(first_pr, first_pr + prs_count))
    try:
        for n in prs:
            w.github.add_pull(REPOSITORY, n, labels=["preview"])
        with PeakRss(service.pid) as rss:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(prs)) as pool:
                statuses = list(pool.map(lambda n: service.webhook("pull_request", event("labeled", n)), prs))
            if any(s != 202 for s in statuses):
                raise RuntimeError(f"webhooks answered {sorted(set(statuses))}")
            wait_until(
                "all burst PRs ready", lambda: all(probe.ready(f"pr-{n}") for n in prs), timeout=1800, interval=0.5
            )
            wall = time.perf_counter() - t0
        progress(f"  parallelism {parallelism}: {len(prs)} ready in {wall:.1f}s, peak {rss.peak / 2**20:.0f} MiB")

        # The floor at the same parallelism needs the rendered objects of one environment.
        objects = probes.render(api, f"pr-{prs[0]}")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            list(pool.map(lambda n: probes.floor_up(objects, f"floor-{n}", w.postgres.dsn, probe, env), prs))
        floor_wall = time.perf_counter() - t0

        # Tear everything down again so the next parallelism starts from an empty cluster.
        for n in prs:
            w.github.close_pull(REPOSITORY, n)
        with ThreadPoolExecutor(max_workers=len(prs)) as pool:
            list(pool.map(lambda n: service.webhook("pull_request", event("closed", n, label=None)), prs))
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            list(pool.map(lambda n: probes.floor_down(f"floor-{n}", w.postgres.dsn, probe, env), prs))
        wait_until("all burst PRs torn down", lambda: all(probe.gone(n) for n in prs), timeout=1800, interval=0.5)
    finally:
        service.stop()
        api.close()
    return {"wall_s": wall, "peak_rss_bytes": rss.peak, "floor_wall_s": floor_wall}


def run(
    w: World,
    ctx: Context,
    levels: tuple[int, ...] = (1, 2, 4),
    samples: int = 3,
    prs: int = BURST,
    first_pr: int = 2000,
    progress: Any = print,
) -> dict[str, Any]:
    results = []
    for i, parallelism in enumerate(levels):
        conditions = ctx.begin(
            cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=parallelism, samples=samples
        )
        runs = [run_one(w, parallelism, first_pr + 1000 * i + 100 * k, prs, progress) for k in range(samples)]
        wall, floor = summarise([r["wall_s"] for r in runs], 1), summarise([r["floor_wall_s"] for r in runs], 1)
        results.append(
            {
                "parallelism": parallelism,
                "prs": prs,
                "samples": samples,
                "wall": wall,
                "floor_wall": floor,
                "peak_rss_mib": round(max(r["peak_rss_bytes"] for r in runs) / 2**20),
                "ratio": round(wall["median_s"] / floor["median_s"], 2),
                "samples_s": [round(r["wall_s"], 1) for r in runs],
                "floor_samples_s": [round(r["floor_wall_s"], 1) for r in runs],
                "conditions": ctx.end(conditions),
            }
        )
    return {"prs": prs, "levels": results}
