"""``make bench``: run the benchmarks, write bench/results/latest.json and a Markdown table for the README.

Benchmarks are not tests: nothing here asserts a timing. Each result carries its floor (measured in the same run)
and its target, so a reader sees the ratio that holds across machines.

    python -m bench                       # all of them (about 30 minutes on 2 cores)
    python -m bench lifecycle burst       # some: db_branch, lifecycle (time to ready + teardown), burst, idle

A partial run keeps the other results of bench/results/latest.json, so the table always shows the latest of each.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("lifecycle", "burst", "idle", "db_branch")  # idle last among the cluster ones: it leaves 200 environments


def machine() -> dict[str, Any]:
    mem = 0
    with contextlib.suppress(OSError, IndexError, ValueError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def to_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Latest run {results['when']} on {m['cpus']} CPUs / {m['memory_mib']} MiB (each row says when it ran).",
        "",
        "| benchmark | prenv | floor (same run) | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    life = results.get("lifecycle")
    if life:
        r, td = life["time_to_ready"], life["teardown"]
        lines.append(
            f"| time to ready: webhook → Deployment available, Ingress admitted, role logs in "
            f"({life['runs']} runs, {life['when']}) | median {r['median_s']} s, p95 {r['p95_s']} s "
            f"(PR comment says ready: {r['announced_median_s']} s) | `kubectl apply --server-side` + `kubectl wait` "
            f"+ same SQL: {r['floor']['median_s']} s | {r['ratio']}x | median ≤ {r['target_median_s']:g} s, "
            f"ratio ≤ {r['target_ratio']:g} | "
            f"{_verdict(r['median_s'] <= r['target_median_s'] and r['ratio'] <= r['target_ratio'])} |"
        )
        lines.append(
            f"| teardown: close → namespace gone, database and role dropped, stack removed ({life['runs']} runs) | "
            f"median {td['median_s']} s, p95 {td['p95_s']} s | `kubectl delete namespace --wait` + `DROP`: "
            f"{td['floor']['median_s']} s | {td['ratio']}x | median ≤ {td['target_median_s']:g} s | "
            f"{_verdict(td['median_s'] <= td['target_median_s'])} |"
        )
    burst = results.get("burst")
    if burst:
        for level in burst["levels"]:
            lines.append(
                f"| burst: {burst['prs']} PRs labelled at once → all ready, parallelism {level['parallelism']} "
                f"({burst['when']}) | {level['wall_s']} s, peak {level['peak_rss_mib']} MiB (service + pulumi) | "
                f"same objects and SQL, same parallelism: {level['floor_wall_s']} s | {level['ratio']}x | — | |"
            )
    idle = results.get("idle")
    if idle:
        i, mem = idle["idle"], idle["memory"]
        lines.append(
            f"| idle resync: {i['prs']} open PRs, all deployed and unchanged ({idle['when']}) | {i['wall_s']} s, "
            f"{i['pulumi_processes']} pulumi processes, {i['github_requests']} GitHub requests, {i['cpu_s']} CPU s | "
            f"Automation API listing: {i['floor_wall_s']} s, {i['floor_pulumi_processes']} pulumi processes | "
            f"{i['ratio']}x faster | 0 processes, ≤ {i['target_github_requests']} requests | "
            f"{_verdict(i['pulumi_processes'] == 0 and i['github_requests'] <= i['target_github_requests'])} |"
        )
        lines.append(
            f"| driver memory: `prenv serve` idle, {mem['tracked_environments']} tracked environments | "
            f"RSS {mem['rss_mib']} MiB (peak {mem['peak_rss_mib']}) | Python importing the same modules: "
            f"{mem['floor_rss_mib']} MiB | — | ≤ {mem['target_rss_mib']} MiB | "
            f"{_verdict(mem['rss_mib'] <= mem['target_rss_mib'])} |"
        )
    db = results.get("db_branch")
    if db:
        lines.append(
            f"| database branch of a {db['seed_bytes'] // 2**20} MiB seed (median of {db['runs']}"
            f"{', ' + db['when'] if 'when' in db else ''}) | `CREATE DATABASE … TEMPLATE` {db['template_median_s']} s"
            f" | `pg_dump \\| psql` {db['dump_restore_median_s']} s | {db['ratio']}x faster | ≥ {db['target_ratio']}x"
            f" | {_verdict(db['ratio'] >= db['target_ratio'])} |"
        )
    return "\n".join(lines) + "\n"


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str]) -> None:
    # SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the world's cluster and PostgreSQL are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    which = [name for name in ALL if name in set(argv)] if argv else list(ALL)
    unknown = set(argv) - set(ALL)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(ALL)}")
    RESULTS.mkdir(exist_ok=True)
    latest = RESULTS / "latest.json"
    results: dict[str, Any] = json.loads(latest.read_text()) if latest.exists() else {}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results.update({"when": now, "machine": machine()})

    def record(name: str, value: dict[str, Any], started: float) -> None:
        results[name] = {**value, "when": now, "seconds": round(time.monotonic() - started)}
        latest.write_text(json.dumps(results, indent=2) + "\n")  # after each, so a crash keeps what finished

    cluster_ones = [n for n in which if n != "db_branch"]
    if cluster_ones:
        from bench import burst, idle, lifecycle
        from bench.world import world

        with world(progress=_say) as w:
            for name in cluster_ones:
                started = time.monotonic()
                _say(f"{name}…")
                module = {"lifecycle": lifecycle, "burst": burst, "idle": idle}[name]
                record(name, module.run(w, progress=_say), started)
                _say(json.dumps(results[name]))
    if "db_branch" in which:
        from bench import db_branch

        started = time.monotonic()
        _say("database branch: seeding ~200 MB and timing TEMPLATE vs pg_dump | psql…")
        record("db_branch", db_branch.run(), started)
        _say(json.dumps(results["db_branch"]))
    (RESULTS / "latest.md").write_text(to_markdown(results))
    _say(to_markdown(results))


if __name__ == "__main__":
    main(sys.argv[1:])
