"""The reliability suite's figures: one JSON record per check, and the Markdown table the README shows.

Tests under tests/reliability/ measure (crashes, outages, hostile input, isolation, secrets) and write records
(testsupport/records.py); ``python -m bench.reliability`` renders them into ``bench/results/reliability.md`` and
the README's ``reliability`` block (bench/readme.py; tests/unit/test_bench_readme.py checks the two agree).
Each row names the command that produced its record; an orphans, pending-operations or processes cell the check does
not measure says "n/a" and why.

Records are figures, never timing assertions: the tests assert the targets (failures 0, orphans 0) themselves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.readme import README, rewrite
from testsupport.records import DEFAULT_DIR, DIR_ENV, RESULTS, Record, load_records

DEFAULT_TABLE = RESULTS / "reliability.md"


def _cell(value: int | None, note: str) -> str:
    if value is None:
        return f"n/a ({note or 'not measured by this check'})"
    return str(value)


def _conditions(c: dict[str, Any]) -> str:
    """``under load: machine shared with other runs (12 of their processes), 1-min load average …`` or ``no other
    run seen, …``: a record made while other engineers' tests ran says so."""
    if not c:
        return "conditions not recorded"
    load = (
        f"1-min load average {c.get('load1_before', '?')} at start, {c.get('load1_after', '?')} at end on "
        f"{c.get('cpus', '?')} CPUs (this run's own work included)"
    )
    others = c.get("other_processes", 0)
    if c.get("under_load"):
        return f"under load: machine shared with other runs ({others} of their processes), {load}"
    return f"no other run seen, {load}"


def render(records: list[Record]) -> str:
    """The README table: check, trials, failures, orphans, pending operations and leftover pulumi processes after
    recovery, and the command each record came from."""
    lines = [
        "| check | trials | failures | orphans | pending operations | processes left | recorded by |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        command = f"`{r.command}`" if r.command else "command not recorded"
        lines.append(
            f"| {r.title} | {f'{r.trials} {r.unit}'.strip()} | {r.failures} | {_cell(r.orphans, r.orphans_note)} | "
            f"{_cell(r.pending, r.pending_note)} | {_cell(r.processes, r.processes_note)} | "
            f"{command}, {r.finished_at or 'time not recorded'}; {_conditions(r.conditions)} |"
        )
    newest = max((r.finished_at for r in records), default="")
    if newest:
        lines += [
            "",
            "Measured by the reliability suite (tests/reliability/; `make chaos` is the documented command); "
            f"latest record {newest}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help=f"records (default ${DIR_ENV} or {DEFAULT_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_TABLE, help="Markdown file to write ('-' for stdout)")
    parser.add_argument(
        "--readme", type=Path, default=README, help="README whose reliability block is rewritten ('-': none)"
    )
    args = parser.parse_args(argv)
    table = render(load_records(args.dir))
    if str(args.out) == "-":
        print(table, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
        print(f"wrote {args.out}")
    if str(args.readme) != "-":
        changed = rewrite("reliability", table, args.readme)
        print(f"{'rewrote' if changed else 'unchanged:'} the reliability block of {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
