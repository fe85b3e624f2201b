"""The reliability suite's record format: one JSON record per check and test process, written by the tests under
tests/reliability/ and rendered by ``python -m bench.reliability``.

A check measured by several pytest-xdist workers writes one part per worker (``<check>.<part>.json``); the parts of
the latest run of a check are summed, so a stale part from an earlier run never counts twice.

Each record says which command produced it (``make chaos → python -m pytest -n 2 -m chaos tests``), read from the
process tree when it is written, so a table row can be traced to the documented command. A check that does not
measure leftovers records ``orphans=None`` with the reason in ``orphans_note``; it is shown as "n/a", never as 0. The
same holds for pending operations left in a stack's checkpoint after recovery (``pending``) and for pulumi, language
host and provider processes still running after the check (``processes``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
DEFAULT_DIR = RESULTS / "reliability"
DIR_ENV = "PRENV_RELIABILITY_DIR"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Record:
    """One check's figures from one test process.

    ``trials`` counts the attempts (kills, outage cycles, requests, payloads...), ``failures`` the trials that broke
    the check's promise, ``orphans`` what was left behind (namespaces, databases, roles, stacks, locks), and
    ``details`` breaks those down. ``order`` places the row in the table; ``unit`` names what one trial is.
    ``orphans`` is None when the check does not measure leftovers (``orphans_note`` says why); ``command`` is the
    command line that produced the record (filled in by write_record). ``pending`` counts pending operations left in
    the checkpoints after recovery, ``processes`` the pulumi, language-host and provider processes the check left
    running; None (with ``pending_note`` / ``processes_note`` saying why) when not measured.
    """

    check: str
    title: str
    trials: int
    failures: int
    orphans: int | None
    order: int = 100
    unit: str = ""  # what one trial is ("kills", "cycles", "deliveries"...), shown beside the count
    details: dict[str, Any] = field(default_factory=dict)
    run: str = ""
    part: str = "main"
    finished_at: str = ""
    orphans_note: str = ""  # why orphans were not measured (when orphans is None)
    command: str = ""
    pending: int | None = None
    pending_note: str = ""
    processes: int | None = None
    processes_note: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    """What the machine was doing (harness.conditions): start, load average before and after, processes of other
    runs competing for the cores, and whether that made the record "under load"."""


COMMAND_ENV = "PRENV_RECORD_COMMAND"


def _cmdline(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def producing_command(environ: dict[str, str] | None = None, pid: int | None = None) -> str:
    """The command that is producing records: ``$PRENV_RECORD_COMMAND``, else the pytest command line found among
    this process and its ancestors (an xdist worker's parent is the pytest that started it), prefixed with the
    ``make`` target that started it, if any (``make chaos → python -m pytest -n 2 -m chaos tests``)."""
    env = os.environ if environ is None else environ
    if env.get(COMMAND_ENV):
        return env[COMMAND_ENV]
    pytest_cmd, make_cmd = "", ""
    p, seen = (os.getpid() if pid is None else pid), set[int]()
    while p > 1 and p not in seen and len(seen) < 16:
        seen.add(p)
        argv = _cmdline(p)
        names = [Path(a).name for a in argv]
        if not pytest_cmd and "pytest" in " ".join(argv[:3]) and "-c" not in argv[1:2]:
            pytest_cmd = " ".join(["python" if names[0].startswith("python") else names[0], *argv[1:]])
        if names and names[0] == "make":
            make_cmd = " ".join(["make", *argv[1:]])
            break
        p = _parent(p)
    command = pytest_cmd or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(_cmdline(os.getpid())))
    return f"{make_cmd} → {command}" if make_cmd else command


def results_dir(environ: dict[str, str] | None = None) -> Path:
    """Where records go: ``$PRENV_RELIABILITY_DIR`` or bench/results/reliability/."""
    env = os.environ if environ is None else environ
    return Path(env[DIR_ENV]) if env.get(DIR_ENV) else DEFAULT_DIR


def write_record(record: Record, directory: Path | None = None) -> Path:
    """Write ``record`` as ``<check>.<part>.json`` (the part is the xdist worker, ``main`` without xdist)."""
    if not _NAME.match(record.check) or not _NAME.match(record.part):
        raise ValueError(f"check and part must be lower-case slugs, got {record.check!r}/{record.part!r}")
    directory = directory or results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamped = Record(
        **{
            **asdict(record),
            "finished_at": record.finished_at or datetime.now(UTC).isoformat(timespec="seconds"),
            "command": record.command or producing_command(),
        }
    )
    path = directory / f"{record.check}.{record.part}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(stamped), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_records(directory: Path | None = None) -> list[Record]:
    """Every record in ``directory``, parts of the latest run of each check summed into one record per check."""
    directory = directory or results_dir()
    by_check: dict[str, list[Record]] = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        rec = Record(**data)
        by_check.setdefault(rec.check, []).append(rec)
    merged = []
    for parts in by_check.values():
        latest = max(parts, key=lambda r: r.finished_at)
        same_run = [r for r in parts if r.run == latest.run] if latest.run else [latest]
        merged.append(_sum(same_run))
    return sorted(merged, key=lambda r: (r.order, r.check))


def _sum(parts: list[Record]) -> Record:
    first = max(parts, key=lambda r: r.finished_at)
    details: dict[str, Any] = {}
    for part in parts:
        for key, value in part.details.items():
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and isinstance(details.get(key, 0), int | float)
            ):
                details[key] = details.get(key, 0) + value
            else:
                details.setdefault(key, value)
    return Record(
        check=first.check,
        title=first.title,
        trials=sum(p.trials for p in parts),
        failures=sum(p.failures for p in parts),
        orphans=_total([p.orphans for p in parts]),
        order=first.order,
        unit=first.unit,
        details=details,
        run=first.run,
        part="+".join(sorted(p.part for p in parts)),
        finished_at=first.finished_at,
        orphans_note=first.orphans_note,
        command=first.command,
        pending=_total([p.pending for p in parts]),
        pending_note=first.pending_note,
        processes=_total([p.processes for p in parts]),
        processes_note=first.processes_note,
        conditions=_busiest([p.conditions for p in parts]),
    )


def _busiest(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the parts' conditions, the one with the most competing processes: a row is under load if any part was."""
    return max(conditions, key=lambda c: (bool(c.get("under_load")), c.get("other_processes", 0)), default={})


def _total(values: list[int | None]) -> int | None:
    """The sum of the parts' figures, None (not measured) when any part did not measure it."""
    return None if any(v is None for v in values) else sum(v or 0 for v in values)
