"""``make bench``: run the benchmarks, write bench/results/latest.json and a Markdown table for the README.

Benchmarks are not tests: nothing here asserts a timing. Each result carries its floor (measured in the same run)
and its target, so a reader sees the ratio that holds across machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


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


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Run {results['when']} on {results['machine']['cpus']} CPUs / {results['machine']['memory_mib']} MiB.",
        "",
    ]
    db = results.get("db_branch")
    if db:
        lines += [
            "| benchmark | prenv | floor | ratio | target |",
            "|---|---|---|---|---|",
            f"| database branch of a {db['seed_bytes'] // 2**20} MiB seed (median of {db['runs']}) | "
            f"`CREATE DATABASE … TEMPLATE` {db['template_median_s']} s | "
            f"`pg_dump \\| psql` {db['dump_restore_median_s']} s | {db['ratio']}x faster | ≥ {db['target_ratio']}x |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    from bench import db_branch

    which = set(argv) or {"db_branch"}
    results: dict[str, Any] = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine()}
    if "db_branch" in which:
        print("database branch: seeding ~200 MB and timing TEMPLATE vs pg_dump | psql…", flush=True)
        results["db_branch"] = db_branch.run()
        print(json.dumps(results["db_branch"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(to_markdown(results))
    print(to_markdown(results))


if __name__ == "__main__":
    main(sys.argv[1:])
