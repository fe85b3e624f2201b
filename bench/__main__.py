"""``make bench``: run the benchmarks, write bench/results/latest.json, latest.md and the README's table.

Benchmarks are not tests: nothing here asserts a timing. Each result carries its floor (measured in the same run),
its target and its conditions (bench.conditions), so a reader sees the ratio that holds across machines and what
the figure was measured under.

    python -m bench                          # all of them (about 45 minutes on 2 cores)
    python -m bench lifecycle realnode       # some: lifecycle, burst, idle, realnode, db_branch
    python -m bench realnode --quick         # a smoke test of the code: 2 samples, written to .state/bench/ only
    python -m bench --under-load             # on a busy machine: run anyway, every row marked "under load"
    python -m bench --render                 # run nothing: render latest.json into latest.md and the README
    python -m bench profile [--write-docs]   # not part of a run: where one up/destroy spends wall and CPU time

A busy machine (load average above half the cores, or other pulumi, pytest or cluster processes) is refused: its
figures would measure the other work. A partial run keeps the other results of latest.json, so the table always
shows the latest of each, each row with its own time and conditions. ``--quick`` (or ``--runs``/``--prs`` below
the documented counts) never touches latest.json or the README: it writes .state/bench/quick.json and quick.md
(outside git).
"""

from __future__ import annotations

import argparse
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

from bench.conditions import Context, machine_load
from bench.readme import rewrite
from bench.report import to_markdown

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = Path(__file__).resolve().parents[1] / ".state" / "bench"  # quick runs: kept out of git with .state/
# idle last among the KWOK ones: it leaves 200 environments; the real node runs in a world of its own.
ALL = ("lifecycle", "burst", "idle", "realnode", "db_branch")
KWOK = ("lifecycle", "burst", "idle")


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


def _say(text: str) -> None:
    print(text, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", metavar="benchmark", help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="2 samples each, small worlds; writes .state/bench/ only")
    parser.add_argument(
        "--runs", type=int, help="samples per benchmark (burst: per level); fewer than documented = quick"
    )
    parser.add_argument(
        "--prs", type=int, help="burst: PRs per burst; idle: PRs deployed; fewer than documented = quick"
    )
    parser.add_argument("--render", action="store_true", help="run nothing; re-render latest.json (latest.md, README)")
    parser.add_argument(
        "--under-load", action="store_true", help="run on a busy machine anyway; every row is marked under load"
    )
    args = parser.parse_args(argv)
    unknown = set(args.which) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(ALL)}")
    return args


DEFAULTS: dict[str, dict[str, Any]] = {  # the documented run
    "lifecycle": {"runs": 20},
    "burst": {"samples": 3, "prs": 20},
    "idle": {"prs": 200, "resyncs": 5},
    "realnode": {"runs": 10},
    "db_branch": {"runs": 5},
}


def plan(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each benchmark's ``run``: the documented counts unless --quick, --runs or --prs."""
    runs, prs = args.runs, args.prs
    if args.quick:
        runs, prs = runs or 2, prs or 3
    return {
        "lifecycle": {"runs": runs or 20},
        "burst": {"samples": runs or 3, "prs": prs or 20, **({"levels": (1, 2)} if args.quick else {})},
        "idle": {"prs": prs or 200, "resyncs": runs or 5},
        "realnode": {"runs": runs or 10},
        "db_branch": {"runs": runs or 5, **({"megabytes": 20} if args.quick else {})},
    }


def is_quick(args: argparse.Namespace, which: list[str]) -> bool:
    """Fewer samples, PRs or levels than the documented run for any selected benchmark: not a figure."""
    if args.quick:
        return True
    planned = plan(args)
    return any(planned[name].get(key, value) < value for name in which for key, value in DEFAULTS[name].items())


def main(argv: list[str]) -> int:
    # SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the worlds' clusters and PostgreSQL are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "profile" in argv:  # its own command: never part of the default run, never writes latest.json
        from bench import profile

        return profile.main([a for a in argv if a != "profile"], say=_say)
    args = parse(argv)
    if args.render:
        table = to_markdown(json.loads((RESULTS / "latest.json").read_text()))
        (RESULTS / "latest.md").write_text(table)
        changed = rewrite("bench", table)
        _say(f"{'rewrote' if changed else 'unchanged:'} README.md's bench block; wrote bench/results/latest.md")
        return 0
    which = [name for name in ALL if name in set(args.which)] if args.which else list(ALL)
    quick = is_quick(args, which)
    load = machine_load()
    if load.busy and not args.under_load:
        _say(
            f"refusing to benchmark a busy machine: {load.why()}.\n"
            "Figures taken now would measure the other work. Wait for it to finish, or run with --under-load "
            "(every row is then marked under load)."
        )
        return 2
    if "realnode" in which:
        from bench.realnode import preflight

        problem = preflight()
        if problem:
            _say(f"refusing to start: {problem}")
            return 2
    command = " ".join(["python -m bench", *argv])
    ctx = Context(command=command, quick=quick, under_load=load.busy)
    kwargs = plan(args)

    where = QUICK if quick else RESULTS
    where.mkdir(parents=True, exist_ok=True)
    out = where / ("quick.json" if quick else "latest.json")
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results.update({"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine()})

    def record(name: str, value: dict[str, Any], started: float) -> None:
        results[name] = {**value, "seconds": round(time.monotonic() - started)}
        out.write_text(json.dumps(results, indent=2) + "\n")  # after each, so a crash keeps what finished
        _say(json.dumps(results[name]))

    kwok = [n for n in which if n in KWOK]
    if kwok:
        from bench import burst, idle, lifecycle
        from bench.world import world

        with world(progress=_say) as w:
            for name in kwok:
                started = time.monotonic()
                _say(f"{name} (KWOK)…")
                module: Any = {"lifecycle": lifecycle, "burst": burst, "idle": idle}[name]
                record(name, module.run(w, ctx, progress=_say, **kwargs[name]), started)
    refused = ""
    if "realnode" in which:
        from bench import realnode
        from prenv.errors import ClusterError

        started = time.monotonic()
        _say("realnode: time to ready on the real node…")
        try:
            with realnode.real_world(ctx, progress=_say) as rb:
                value = realnode.run(rb, ctx, progress=_say, **kwargs["realnode"])
            value["leftovers_after_down"] = rb.leftovers_after_down
            record("realnode", value, started)
        except ClusterError as e:  # the lock was taken or a node started since the preflight: say so, keep the rest
            if "real node" not in str(e):
                raise
            refused = f"realnode not measured: {e}"
            _say(refused)
    if "db_branch" in which:
        from bench import db_branch

        started = time.monotonic()
        _say("database branch: seeding and timing TEMPLATE vs pg_dump | psql…")
        record("db_branch", db_branch.run(ctx, **kwargs["db_branch"]), started)

    table = to_markdown(results)
    (where / ("quick.md" if quick else "latest.md")).write_text(table)
    if not quick:
        rewrite("bench", table)
        _say("README.md's bench block rewritten")
    _say(table)
    if refused:
        _say(refused)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
