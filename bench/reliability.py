"""The reliability suite's figures: one JSON record per check, and the Markdown table the README shows.

Tests under tests/reliability/ measure (crashes, outages, hostile input, isolation, secrets) and write records
(testsupport/records.py); ``python -m bench.reliability`` renders them into ``bench/results/reliability.md``.

Records are figures, never timing assertions: the tests assert the targets (failures 0, orphans 0) themselves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from testsupport.records import DEFAULT_DIR, DIR_ENV, RESULTS, Record, load_records

DEFAULT_TABLE = RESULTS / "reliability.md"


def render(records: list[Record]) -> str:
    """The README table: check, trials, failures, orphans (plus what the trials were)."""
    lines = [
        "| check | trials | failures | orphans |",
        "|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r.title} | {f'{r.trials} {r.unit}'.strip()} | {r.failures} | {r.orphans} |")
    newest = max((r.finished_at for r in records), default="")
    if newest:
        lines += [
            "",
            f"Measured by the reliability suite (tests/reliability/, run by `make chaos`); latest record {newest}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help=f"records (default ${DIR_ENV} or {DEFAULT_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_TABLE, help="Markdown file to write ('-' for stdout)")
    args = parser.parse_args(argv)
    table = render(load_records(args.dir))
    if str(args.out) == "-":
        print(table, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
