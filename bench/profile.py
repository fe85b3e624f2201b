"""``python -m bench profile``: where one environment's pulumi operation spends its wall time and CPU, phase by phase.

Issue 19 asks why a PR costs seconds of CPU and ~0.9 s before its first resource registers. This command answers it
for one ``up`` and one ``destroy`` of a ``pr-<n>`` stack, driven through prenv's stack gateway on the benchmark
world's embedded KWOK cluster (bench/world.py), with three sources that each see what the others cannot:

- **the engine's own log** (``pulumi -v=9 --logtostderr``, JSON lines with nanosecond timestamps): when the CLI is up,
  the language host starts, the program runs and registers its first resource, each provider is launched and has
  shaken hands, each provider call (Create/Delete, which include pulumi-kubernetes' readiness awaits) starts and
  ends, each checkpoint is saved, and the program and plugins shut down. The log sees the whole operation through
  the engine, which is where every other process reports to;
- **the wrapper's exec times**: the gateway is given a ``pulumi`` that is a two-line bash script recording
  ``$EPOCHREALTIME`` and its arguments before it ``exec``\\ s the real CLI (same pid, no fork), so process start-up
  before the first log line and the gateway's other pulumi commands (``stack init``, ``config set-all``,
  ``stack select``, ``stack rm``) are timed too;
- **process accounting**: a sampler reads ``/proc/<pid>/stat`` (user + system ticks) of every process the gateway's
  pulumi commands start, and their descendants (language host, Python program, providers, the dynamic provider's
  shim and Python) every ``SAMPLE_SECONDS``; a phase's CPU is the whole tree's CPU during its window. A process
  that exits between two samples loses its last few ticks: ``getrusage(RUSAGE_CHILDREN)`` around each operation
  gives the exact total, and the difference is shown as "unsampled".

Phases are consecutive windows on the wall clock (they add up to the operation); provider starts, provider calls and
checkpoint writes overlap other work and are listed separately as spans. The program's imports are also measured on
their own (``python -X importtime`` of ``__main__.py``'s import path, in the project directory) to show which
packages they are.

Each sample is a fresh PR (create, then destroy) after one unreported warm-up; the table shows the median of each
phase over the samples and the median of the totals (which is not the sum of the medians). ``-v=9`` logging costs
the engine some CPU itself; the totals of the same operations without it are measured too (``unlogged``).

Output: .state/bench/profile.json and profile.md (outside git); with ``--write-docs``, the generated block of
docs/benchmarks.md (between ``<!-- profile:start -->`` and ``<!-- profile:end -->``). Never bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.conditions import Context, machine_load

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".state" / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"
SAMPLE_SECONDS = 0.02
DEFAULT_RUNS = 3
FIRST_PR = 7000
_TICK = os.sysconf("SC_CLK_TCK")
# What the program's __main__.py imports before and while building a pr-<n> stack (see __main__.py).
PROGRAM_IMPORTS = "import pulumi, prenv.naming, prenv.errors, stacks.preview"


# --- records -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of the engine's JSON log: wall-clock time (seconds since the epoch) and message."""

    t: float
    msg: str


@dataclass(frozen=True)
class Exec:
    """One pulumi process the gateway started, as the wrapper recorded it."""

    t: float
    pid: int
    args: tuple[str, ...]

    @property
    def command(self) -> str:
        """``up``, ``destroy``, ``stack init``, ``config set-all``…: the words that are not flags or their values."""
        words = [a for a in self.args if not a.startswith("-")]
        if not words:
            return "pulumi"
        return " ".join(words[:2]) if words[0] in ("stack", "config", "plugin") else words[0]


@dataclass(frozen=True)
class Window:
    """A stretch of wall clock: a phase (consecutive, adding up to the operation) or a span (overlapping)."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


# --- parsing the engine's log --------------------------------------------------------------------------------------

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _epoch(stamp: str) -> float:
    """RFC 3339 with nanoseconds (``2026-12-02T09:53:29.518064599Z``) as seconds since the epoch."""
    from datetime import datetime

    m = _TIME.match(stamp)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    whole, frac, zone = m.groups()
    base = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return base + (float(frac) if frac else 0.0)


def parse_log(text: str) -> list[LogLine]:
    """The engine's JSON log lines (``{"time": …, "msg": …}``); anything else on stderr is skipped."""
    out = []
    for raw in text.splitlines():
        if not raw.startswith("{"):
            continue
        try:
            doc = json.loads(raw)
            out.append(LogLine(_epoch(doc["time"]), str(doc["msg"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def parse_execs(text: str) -> list[Exec]:
    """The wrapper's lines: ``<pid> <epoch seconds> <arguments…>``."""
    out = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 2:
            try:
                out.append(Exec(float(parts[1]), int(parts[0]), tuple(parts[2:])))
            except ValueError:
                continue
    return out


@dataclass(frozen=True)
class Mark:
    """Where a phase of the main command begins: the first log line matching ``pattern`` (after ``after``, when set,
    and before ``before``)."""

    phase: str
    pattern: str
    before: str | None = None
    after: str | None = None


# In time order for an up; a destroy has a subset. Two marks may name the same phase: its windows are added up.
MARKS: tuple[Mark, ...] = (
    Mark("CLI start-up: flags, credentials, backend", r"."),
    Mark("stack and checkpoint load", r"Current cloud URL"),
    Mark("language host probe (About)", r"Launching plugin 'python'", before=r"\*\*\* Starting "),
    Mark("stack and checkpoint load", r"killing plugin .*pulumi-language-python", before=r"\*\*\* Starting "),
    Mark("engine start: language host start", r"\*\*\* Starting "),
    Mark("required packages (the language host asks Python)", r"GetRequiredPackages\(.*\) executing"),
    Mark("plugin resolution", r"GetRequiredPackages\(.*\) success"),
    Mark("program start: Python, pulumi SDK imports", r"langhost\[python\]\.Run\(.*\) executing"),
    Mark("program: stacks/components imports, declaring resources", r"registering resource: ty=pulumi:pulumi:Stack"),
    Mark(
        "resource operations: provider starts, CRUD, awaits, checkpoints",
        r"ResourceMonitor\.RegisterResource received|Launching plugin '[^']* \(resource\)'",
        after=r"GetRequiredPackages\(.*\) success|\*\*\* Starting ",
    ),
    Mark("plugin shutdown", r"step executor has completed"),
    Mark("program shutdown (Python exit)", r"run_pulumi_func completed"),
    Mark("plugin shutdown", r"Program exited"),
    Mark("CLI exit", r"\*\*\* \w+\(preview=\w+\) complete \*\*\*"),
)
PROCESS_START = "pulumi process start (exec to first log line)"
GATEWAY_BEFORE = "gateway, before its first pulumi process"


def _first(log: list[LogLine], pattern: str, lo: float = float("-inf"), hi: float = float("inf")) -> float | None:
    rx = re.compile(pattern)
    return next((line.t for line in log if lo <= line.t < hi and rx.search(line.msg)), None)


def engine_marks(log: list[LogLine], marks: Iterable[Mark] = MARKS) -> list[tuple[float, str]]:
    """(time, phase) where each phase of the main command begins, in time order."""
    found = []
    for mark in marks:
        hi = _first(log, mark.before) if mark.before else None
        lo = _first(log, mark.after) if mark.after else None
        if mark.after and lo is None:
            continue
        t = _first(log, mark.pattern, lo if lo is not None else float("-inf"), hi if hi is not None else float("inf"))
        if t is not None:
            found.append((t, mark.phase))
    return sorted(found, key=lambda m: m[0])


def phases(start: float, end: float, execs: list[Exec], main: str, log: list[LogLine]) -> list[Window]:
    """The operation from the gateway call's ``start`` to its ``end`` as consecutive windows: the gateway before
    its first process, each other pulumi command (exec to the next exec), the main command's process start and its
    engine phases, and whatever follows its end."""
    marks: list[tuple[float, str]] = [(start, GATEWAY_BEFORE)]
    for e in execs:
        if not start <= e.t <= end:
            continue
        if e.command == main:
            marks.append((e.t, PROCESS_START))
            main_end = min(next((x.t for x in execs if x.t > e.t), end), end)
            marks.extend(m for m in engine_marks(log) if e.t <= m[0] <= main_end)
        else:
            marks.append((e.t, f"`pulumi {e.command}`"))
    marks.sort(key=lambda m: m[0])
    return [Window(name, t, marks[i + 1][0] if i + 1 < len(marks) else end) for i, (t, name) in enumerate(marks)]


_LAUNCH = re.compile(r"Launching plugin '([^']+)' from '([^']+)'")
_HANDSHAKE = re.compile(r"Handshake: .*'([^']+)'")
_PROVIDER = re.compile(r"^Provider\[(0x[0-9a-f]+)\]\.(\w+)\((.*?)\) (executing|success|failed)")
_LANGHOST = re.compile(r"^langhost\[python\]\.(\w+)\(")
_SAVED = re.compile(r"^Saved stack .* checkpoint")
_SNAPSHOT = re.compile(r"SnapshotManager|[Ss]napshot")


def _plugin_name(label: str) -> str:
    return "language host (python)" if label == "python" else label.removesuffix(" (resource)")


def spans(log: list[LogLine]) -> list[Window]:
    """Overlapping windows: each plugin's start (launch to handshake or first call), each provider's Configure,
    each provider call (``<plugin>: <Call>``), and each checkpoint write (an estimate: from the snapshot change that
    asked for it, or the log line before, to "Saved")."""
    out: list[Window] = []
    launched: dict[str, tuple[str, float]] = {}  # path -> (plugin, launch time)
    awaiting_ptr: list[str] = []  # plugins that shook hands and whose provider pointer is not known yet
    ptrs: dict[str, str] = {}
    open_calls: dict[tuple[str, str, str], float] = {}
    last_snapshot: float | None = None
    before = [log[0].t if log else 0.0] + [x.t for x in log]  # the time of the line before each line
    for line, previous in zip(log, before, strict=False):
        msg = line.msg
        m = _LAUNCH.search(msg)
        if m:
            launched[m.group(2)] = (_plugin_name(m.group(1)), line.t)
            continue
        m = _HANDSHAKE.search(msg)
        if m and m.group(1) in launched:
            plugin, t0 = launched.pop(m.group(1))
            out.append(Window(f"{plugin}: process start to handshake", t0, line.t))
            awaiting_ptr.append(plugin)
            continue
        m = _PROVIDER.match(msg)
        if m:
            ptr, call, arg, what = m.groups()
            if ptr not in ptrs:
                if awaiting_ptr:
                    ptrs[ptr] = awaiting_ptr.pop(0)
                else:  # a provider whose launch the log did not show (a handshake-less start)
                    ptrs[ptr] = f"provider {ptr}"
            key = (ptr, call, arg)
            if what == "executing":
                open_calls[key] = line.t
            elif key in open_calls:
                out.append(Window(f"{ptrs[ptr]}: {call}", open_calls.pop(key), line.t))
            continue
        if _LANGHOST.match(msg) and "language host (python)" in {v[0] for v in launched.values()}:
            path = next(p for p, v in launched.items() if v[0] == "language host (python)")
            _, t0 = launched.pop(path)
            out.append(Window("language host (python): process start to first call", t0, line.t))
            continue
        if _SAVED.match(msg):
            # An estimate: from the snapshot change that asked for the write (or the line before) to "Saved".
            out.append(Window("checkpoint write", last_snapshot if last_snapshot is not None else previous, line.t))
            last_snapshot = None
        elif _SNAPSHOT.search(msg):
            last_snapshot = line.t
    return out


# --- process accounting --------------------------------------------------------------------------------------------


@dataclass
class _Proc:
    ppid: int
    comm: str
    ticks: int
    role: str = ""


def role_of(comm: str, cmdline: str) -> str:
    """Which part of a pulumi operation a process is, from its name and command line."""
    if "pulumi.dynamic" in cmdline:
        return "dynamic provider (python)"
    if "pulumi-resource-pulumi-python" in cmdline:
        return "dynamic provider (shim)"
    for provider in ("kubernetes", "random"):
        if f"pulumi-resource-{provider}" in cmdline:
            return f"{provider} provider"
    if "pulumi-language-python-exec" in cmdline:
        return "program (python)"
    if "pulumi-language-python" in cmdline:
        return "language host"
    if comm.startswith("python"):
        return "language host's python helpers"
    if comm == "pulumi" or cmdline.split("\0")[0].endswith("/pulumi"):
        return "pulumi CLI / engine"
    return f"other ({comm})"


class TreeSampler:
    """CPU ticks of the pulumi processes this process starts and of all their descendants, sampled from /proc.

    A process is followed when its parent is this process and it runs pulumi (the wrapper), or when its parent is
    followed. Its last seen ticks count after it exits. ``cpu_at(t)`` is the whole tree's CPU seconds at ``t``
    (interpolated between samples)."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.me = os.getpid()
        self.procs: dict[int, _Proc] = {}
        self.ignored: set[int] = set()
        self.retired = 0  # ticks of processes forgotten by ``forget``
        self._lock = threading.Lock()
        self.timeline: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="profile-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    @staticmethod
    def _stat(pid: int) -> tuple[str, int, int] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        comm = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        return comm, int(fields[1]), int(fields[11]) + int(fields[12])

    def tick(self) -> None:
        with self._lock:
            self._tick()

    def _tick(self) -> None:
        now = time.time()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self.ignored:
                continue
            st = self._stat(pid)
            if st is None:
                continue
            comm, ppid, ticks = st
            known = self.procs.get(pid)
            if known is None:
                if ppid in self.procs or (ppid == self.me and comm == "pulumi"):
                    known = self.procs[pid] = _Proc(ppid, comm, ticks)
                elif ppid != self.me:  # our own children may still be between fork and exec: look again
                    self.ignored.add(pid)
                    continue
                else:
                    continue
            if known.comm != comm or not known.role:
                known.comm = comm
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    cmdline = ""
                known.role = role_of(comm, cmdline)
            known.ticks = max(known.ticks, ticks)
        self.timeline.append((now, self.retired + sum(p.ticks for p in self.procs.values())))

    def cpu_at(self, t: float) -> float:
        """The tree's CPU seconds at wall time ``t``."""
        tl = self.timeline
        if not tl or t <= tl[0][0]:
            return tl[0][1] / _TICK if tl else 0.0
        for (t0, c0), (t1, c1) in itertools.pairwise(tl):
            if t0 <= t <= t1:
                return (c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)) / _TICK
        return tl[-1][1] / _TICK

    def by_role(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {}
            for p in self.procs.values():
                out[p.role] = out.get(p.role, 0.0) + p.ticks / _TICK
            return out

    def forget(self) -> None:
        """Start counting roles afresh; the timeline keeps counting (a window's CPU is a difference)."""
        with self._lock:
            for pid, p in self.procs.items():
                self.ignored.add(pid)
                self.retired += p.ticks
            self.procs.clear()


# --- one sample ----------------------------------------------------------------------------------------------------


@dataclass
class Operation:
    """One profiled up or destroy."""

    kind: str  # "up" | "destroy"
    wall_s: float
    cpu_s: float  # getrusage(RUSAGE_CHILDREN): every waited-for process of the operation
    sampled_cpu_s: float
    phases: list[dict[str, Any]] = field(default_factory=list)  # {"phase", "wall_s", "cpu_s"}, in order
    spans: list[dict[str, Any]] = field(default_factory=list)  # {"span", "count", "wall_s"} (summed)
    roles: dict[str, float] = field(default_factory=dict)
    processes: list[str] = field(default_factory=list)  # the pulumi commands, in order


def summarise_operation(
    kind: str,
    start: float,
    end: float,
    cpu_s: float,
    execs: list[Exec],
    log: list[LogLine],
    cpu_at: Callable[[float], float],
    roles: dict[str, float],
) -> Operation:
    """One operation's phases (wall and tree CPU, same-named windows added up), spans and CPU by role."""
    windows = phases(start, end, execs, kind, log)
    ph: dict[str, list[float]] = {}
    for w in windows:
        acc = ph.setdefault(w.name, [0.0, 0.0])
        acc[0] += w.seconds
        acc[1] += max(0.0, cpu_at(w.end) - cpu_at(w.start))
    sp: dict[str, list[float]] = {}
    for s in spans(log):
        acc = sp.setdefault(s.name, [0, 0.0])
        acc[0] += 1
        acc[1] += s.seconds
    return Operation(
        kind=kind,
        wall_s=round(end - start, 3),
        cpu_s=round(cpu_s, 3),
        sampled_cpu_s=round(max(0.0, cpu_at(end) - cpu_at(start)), 3),
        phases=[{"phase": k, "wall_s": round(v[0], 3), "cpu_s": round(v[1], 3)} for k, v in ph.items()],
        spans=[{"span": k, "count": int(v[0]), "wall_s": round(v[1], 3)} for k, v in sp.items()],
        roles={k: round(v, 3) for k, v in sorted(roles.items(), key=lambda kv: -kv[1])},
        processes=[e.command for e in execs if start <= e.t <= end],
    )


WRAPPER = """#!/bin/bash
# bench/profile.py: record when each pulumi process starts, and the engine log of up/destroy; then become pulumi.
echo "$$ $EPOCHREALTIME $*" >> "$PRENV_PROFILE_DIR/execs.log"
for a in "$@"; do
  case "$a" in up|destroy) exec {real} "$@" -v=9 --logtostderr 2>>"$PRENV_PROFILE_DIR/$a.log" ;; esac
done
exec {real} "$@"
"""


def wrapper_root(dest: Path, real_bin: Path, *, logged: bool = True) -> Path:
    """A pulumi root (``<root>/bin/pulumi``) whose ``pulumi`` is the recording wrapper and whose other binaries
    are the toolchain's; ``logged=False``: the wrapper records exec times only (no -v=9 engine log)."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for p in real_bin.iterdir():
        if p.name != "pulumi" and not (bin_dir / p.name).exists():
            (bin_dir / p.name).symlink_to(p)
    text = WRAPPER.format(real=real_bin / "pulumi")
    if not logged:
        text = text.replace(' -v=9 --logtostderr 2>>"$PRENV_PROFILE_DIR/$a.log"', "")
    script = bin_dir / "pulumi"
    script.write_text(text)
    script.chmod(0o755)
    return dest


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_sample(
    w: Any,
    root: Path,
    sampler: TreeSampler,
    n: int,
    *,
    logged: bool = True,
    extra_env: dict[str, str] | None = None,
    project_dir: Path | None = None,
) -> dict[str, Operation]:
    """Up then destroy PR ``n`` through a fresh gateway whose pulumi is the wrapper under ``root``; ``extra_env``
    (e.g. a PYTHONPATH with other code) goes to every pulumi process, ``project_dir`` replaces the world's project."""
    from prenv.gateway import gateway_for
    from prenv.model import DesiredEnvironment, PullRequest

    out_dir = root / f"pr-{n}"
    out_dir.mkdir(parents=True)
    env = {**w.env(), **(extra_env or {}), "PRENV_PROFILE_DIR": str(out_dir)}
    pulumi_root = root / ("pulumi-logged" if logged else "pulumi-quiet")
    gw = gateway_for(project_dir or w.project_dir, w.backend_url, env, pulumi_root=pulumi_root)
    pr = PullRequest(number=n, sha=f"{n:040x}", branch=f"profile-{n}", base="main", author="bench", title="profile")
    times: dict[str, tuple[float, float, float, dict[str, float]]] = {}
    for kind in ("up", "destroy"):
        sampler.tick()
        sampler.forget()
        c0, t0 = _children_cpu(), time.time()
        if kind == "up":
            gw.up(DesiredEnvironment(pr=pr, config_hash="profile"))
        else:
            gw.destroy(n)
        t1, c1 = time.time(), _children_cpu()
        time.sleep(2 * sampler.interval)  # a last sample of the processes that are still exiting
        times[kind] = (t0, t1, c1 - c0, sampler.by_role())
    execs = parse_execs((out_dir / "execs.log").read_text()) if (out_dir / "execs.log").exists() else []
    result = {}
    for kind, (t0, t1, cpu, roles) in times.items():
        log_file = out_dir / f"{kind}.log"
        log = parse_log(log_file.read_text(errors="replace")) if log_file.exists() else []
        result[kind] = summarise_operation(kind, t0, t1, cpu, execs, log, sampler.cpu_at, roles)
    return result


# --- the program's imports -----------------------------------------------------------------------------------------


def parse_importtime(text: str) -> dict[str, float]:
    """``python -X importtime`` output as self-time seconds per top-level package."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        if not raw.startswith("import time:") or "self [us]" in raw:
            continue
        parts = raw.removeprefix("import time:").split("|")
        if len(parts) != 3:
            continue
        try:
            own = int(parts[0].strip())
        except ValueError:
            continue
        top = parts[2].strip().split(".")[0]
        out[top] = out.get(top, 0.0) + own / 1e6
    return out


def imports(project_dir: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    """The program's import path on its own: wall and CPU of a plain import (median of ``runs``), and where
    ``-X importtime`` says the time goes (median self time per top-level package)."""
    cmd = [sys.executable, "-c", PROGRAM_IMPORTS]
    walls: list[float] = []
    cpus: list[float] = []
    per: dict[str, list[float]] = {}
    for _ in range(runs):
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(cmd, cwd=project_dir, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", PROGRAM_IMPORTS],
            cwd=project_dir,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        for pkg, s in parse_importtime(traced.stderr).items():
            per.setdefault(pkg, []).append(s)
    top = sorted(((k, statistics.median(v)) for k, v in per.items()), key=lambda kv: -kv[1])
    return {
        "command": f"python -c {PROGRAM_IMPORTS!r}",
        "wall_s": round(statistics.median(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "by_package_s": {k: round(v, 3) for k, v in top[:12]},
        "other_packages_s": round(sum(v for _, v in top[12:]), 3),
    }


# --- the run -------------------------------------------------------------------------------------------------------


def _median_rows(rows: list[list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    """The median of each named row over samples, in the order of first appearance; ``samples``: how many it was
    in."""
    order: list[str] = []
    values: dict[str, list[dict[str, Any]]] = {}
    for sample in rows:
        for row in sample:
            if row[key] not in values:
                order.append(row[key])
            values.setdefault(row[key], []).append(row)
    out = []
    for name in order:
        got = values[name]
        merged: dict[str, Any] = {key: name, "samples": len(got)}
        for field_name in got[0]:
            if field_name != key and isinstance(got[0][field_name], int | float):
                merged[field_name] = round(statistics.median(r[field_name] for r in got), 3)
        out.append(merged)
    return out


def aggregate(samples: list[dict[str, Operation]], quiet: list[dict[str, Operation]]) -> dict[str, Any]:
    """Medians per phase, span and role over the samples, and the totals (median of totals)."""
    out: dict[str, Any] = {}
    for kind in ("up", "destroy"):
        ops = [s[kind] for s in samples]
        roles = [[{"role": k, "cpu_s": v} for k, v in op.roles.items()] for op in ops]
        out[kind] = {
            "samples": len(ops),
            "wall_s": round(statistics.median(op.wall_s for op in ops), 3),
            "cpu_s": round(statistics.median(op.cpu_s for op in ops), 3),
            "sampled_cpu_s": round(statistics.median(op.sampled_cpu_s for op in ops), 3),
            "phases": _median_rows([op.phases for op in ops], "phase"),
            "spans": _median_rows([op.spans for op in ops], "span"),
            "roles": _median_rows(roles, "role"),
            "processes": ops[0].processes,
            "per_sample": [asdict(op) for op in ops],
        }
        if quiet:
            q = [s[kind] for s in quiet]
            out[kind]["unlogged"] = {
                "samples": len(q),
                "wall_s": round(statistics.median(op.wall_s for op in q), 3),
                "cpu_s": round(statistics.median(op.cpu_s for op in q), 3),
                "per_sample": [{"wall_s": op.wall_s, "cpu_s": op.cpu_s} for op in q],
            }
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The profile as Markdown: conditions, then per operation its phases, CPU by process and spans; imports."""
    from bench.conditions import render_conditions

    c = result["conditions"]
    lines = [
        f"Written by `{c['command']}` ({result['label']}); {render_conditions(c)}. Medians over the samples (each a "
        "fresh PR: up, then destroy, after one unreported warm-up); a phase's CPU is the CPU of every process of the "
        "operation during its window (sampled from /proc every "
        f"{int(SAMPLE_SECONDS * 1000)} ms); totals are the median of totals, CPU from getrusage.",
        "",
    ]
    if "before" in result:
        lines += [*_comparison(result["before"], result), ""]
    for kind in ("up", "destroy"):
        op = result["operations"][kind]
        lines += [
            f"**{kind}** (`{'`, `'.join(op['processes'])}`): wall {op['wall_s']} s, CPU {op['cpu_s']} s "
            f"(sampled {op['sampled_cpu_s']} s)"
            + (
                f"; without the -v=9 engine log: wall {op['unlogged']['wall_s']} s, CPU {op['unlogged']['cpu_s']} s "
                f"(n={op['unlogged']['samples']})"
                if "unlogged" in op
                else ""
            ),
            "",
            "| phase | wall s | CPU s |",
            "|---|---|---|",
        ]
        lines += [f"| {p['phase']} | {p['wall_s']} | {p['cpu_s']} |" for p in op["phases"]]
        wall_sum = round(sum(p["wall_s"] for p in op["phases"]), 2)
        cpu_sum = round(sum(p["cpu_s"] for p in op["phases"]), 2)
        lines += [
            f"| **sum of the phase medians** | {wall_sum} | {cpu_sum} |",
            f"| **total (median of {op['samples']})** | {op['wall_s']} | {op['cpu_s']} |",
            "",
            "| process | CPU s |",
            "|---|---|",
        ]
        lines += [f"| {r['role']} | {r['cpu_s']} |" for r in op["roles"]]
        unsampled = round(op["cpu_s"] - op["sampled_cpu_s"], 3)
        lines += [f"| unsampled (exited between samples) | {unsampled} |", ""]
        lines += ["| span (overlaps the phases) | count | wall s (summed) |", "|---|---|---|"]
        lines += [f"| {s['span']} | {s['count']:g} | {s['wall_s']} |" for s in op["spans"]]
        lines.append("")
    imp = result.get("imports")
    if imp:
        pkgs = ", ".join(f"{k} {v}" for k, v in imp["by_package_s"].items())
        lines += [
            f"**The program's imports on their own** (`{imp['command']}` in the project directory, median of "
            f"{result['conditions']['samples']}): wall {imp['wall_s']} s, CPU {imp['cpu_s']} s; "
            f"`-X importtime` self time by package (s): {pkgs}; the rest {imp['other_packages_s']}.",
            "",
        ]
    return "\n".join(lines)


def _change(before: float, after: float) -> str:
    delta = after - before
    pct = f" ({100 * delta / before:+.0f} %)" if before else ""
    return f"{delta:+.3f}{pct}"


def _comparison(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Before and after, taken in turns in the same run: totals, then each phase's and process's CPU."""
    lines = [
        f"**Before ({before['label']}) and after ({after['label']}), samples taken in turns in the same world:**",
        "",
        "| operation | measure | before | after | change |",
        "|---|---|---|---|---|",
    ]
    for kind in ("up", "destroy"):
        b, a = before["operations"][kind], after["operations"][kind]
        rows = [("wall s", b["wall_s"], a["wall_s"]), ("CPU s", b["cpu_s"], a["cpu_s"])]
        if "unlogged" in b and "unlogged" in a:
            rows += [
                ("wall s, no engine log", b["unlogged"]["wall_s"], a["unlogged"]["wall_s"]),
                ("CPU s, no engine log", b["unlogged"]["cpu_s"], a["unlogged"]["cpu_s"]),
            ]
        before_phases = {p["phase"]: p for p in b["phases"]}
        for p in a["phases"]:
            if p["phase"] in before_phases:
                rows.append((f"{p['phase']}: CPU s", before_phases[p["phase"]]["cpu_s"], p["cpu_s"]))
        before_roles = {r["role"]: r["cpu_s"] for r in b["roles"]}
        for r in a["roles"]:
            if r["role"] in before_roles:
                rows.append((f"process {r['role']}: CPU s", before_roles[r["role"]], r["cpu_s"]))
        lines += [f"| {kind} | {m} | {x} | {y} | {_change(x, y)} |" for m, x, y in rows]
    bi, ai = before.get("imports"), after.get("imports")
    if bi and ai:
        for measure, key in (("wall s", "wall_s"), ("CPU s", "cpu_s")):
            x, y = bi[key], ai[key]
            lines.append(f"| program imports alone | {measure} | {x} | {y} | {_change(x, y)} |")
    return lines


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"samples (default {DEFAULT_RUNS})")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the profile block of docs/benchmarks.md")
    parser.add_argument("--under-load", action="store_true", help="run on a busy machine anyway; marked under load")
    parser.add_argument("--label", default="the checkout", help="what was profiled (e.g. a cut being tried)")
    parser.add_argument("--out", default="profile", help="output name under .state/bench/ (default profile)")
    parser.add_argument(
        "--no-unlogged", action="store_true", help="skip the samples without the engine log (totals only)"
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="a copy of the packages (components/, prenv/, stacks/) to compare with, put first on PYTHONPATH; its "
        "samples alternate with the checkout's in the same world (its Pulumi.preview.yaml, if any, is used for them)",
    )
    parser.add_argument("--before-label", default="before", help="what --before holds (e.g. the commit)")
    return parser.parse_args(argv)


def _before_env(before: str | None) -> dict[str, str]:
    """The environment that puts the code in ``before`` (a copy of the checkout's packages) first on sys.path."""
    if not before:
        return {}
    path = Path(before).resolve()
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH", "")]))}


def _before_project(w: Any, before: str) -> Path:
    """The world's project, with the stack template of ``before`` when it has one (older code may not accept the
    checkout's config keys), patched as the world patches its own (base domain, database template)."""
    import yaml

    own = Path(before) / "Pulumi.preview.yaml"
    if not own.exists():
        return Path(w.project_dir)
    dest = Path(w.root) / "project-before"
    shutil.copytree(w.project_dir, dest)
    mine = yaml.safe_load((Path(w.project_dir) / "Pulumi.preview.yaml").read_text())
    doc = yaml.safe_load(own.read_text())
    for key in ("prenv:baseDomain", "prenv:database"):
        doc["config"][key] = mine["config"][key]
    (dest / "Pulumi.preview.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _check_before(project_dir: Path, env: dict[str, str], before: str) -> None:
    """Refuse a ``--before`` directory whose packages the program would not import (the comparison would compare
    the checkout with itself)."""
    found = subprocess.run(
        [sys.executable, "-c", "import components, prenv, stacks; print(components.__file__)"],
        cwd=project_dir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not found.startswith(str(Path(before).resolve())):
        raise SystemExit(f"--before {before}: the program would import components from {found}, not from there")


def main(argv: list[str], say: Callable[[str], None] = print) -> int:
    args = parse(argv)
    load = machine_load()
    if load.busy and not args.under_load:
        say(f"refusing to profile a busy machine: {load.why()}. Run with --under-load to mark it so.")
        return 2
    from bench.readme import rewrite
    from bench.world import CLUSTER_DESCRIPTION, SEED_DESCRIPTION, world
    from prenv.toolchain import cache_dir

    ctx = Context(command=" ".join(["python -m bench profile", *argv]), quick=args.runs < 3, under_load=load.busy)
    conditions = ctx.begin(cluster=CLUSTER_DESCRIPTION, seed=SEED_DESCRIPTION, parallelism=1, samples=args.runs)
    # One variant, or two taken in turns (before, after) in the same world under the same load.
    variants = [("before", _before_env(args.before)), ("after", {})] if args.before else [("", {})]
    samples: dict[str, list[dict[str, Operation]]] = {name: [] for name, _ in variants}
    quiet: dict[str, list[dict[str, Operation]]] = {name: [] for name, _ in variants}
    imp: dict[str, Any] = {}
    n = FIRST_PR
    with world(progress=say) as w:
        projects = {name: Path(w.project_dir) for name, _ in variants}
        if args.before:
            projects["before"] = _before_project(w, args.before)
            _check_before(projects["before"], {**w.env(), **variants[0][1]}, args.before)
        root = w.root / "profile"
        real = cache_dir() / "bin"
        wrapper_root(root / "pulumi-logged", real)
        wrapper_root(root / "pulumi-quiet", real, logged=False)
        logs = OUT / f"{args.out}-logs"  # the raw engine logs and exec times, kept for a closer look (or a failure)
        try:
            with TreeSampler() as sampler:
                for name, extra in variants:
                    say(f"warm-up{' of ' + name if name else ''} (not reported)…")
                    run_sample(w, root, sampler, n, extra_env=extra, project_dir=projects[name])
                    n += 1
                for i in range(args.runs):
                    for name, extra in variants:
                        ops = run_sample(w, root, sampler, n, extra_env=extra, project_dir=projects[name])
                        n += 1
                        samples[name].append(ops)
                        say(f"  sample {i + 1}/{args.runs}{' ' + name if name else ''}: " + _brief(ops))
                        if not args.no_unlogged:
                            q = run_sample(
                                w, root, sampler, n, logged=False, extra_env=extra, project_dir=projects[name]
                            )
                            n += 1
                            quiet[name].append(q)
                            say("    unlogged: " + _brief(q))
            for name, extra in variants:
                imp[name] = imports(projects[name], {**w.env(), **extra}, args.runs)
        finally:
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(root, logs, ignore=shutil.ignore_patterns("pulumi-logged", "pulumi-quiet"))
    last = variants[-1][0]
    result: dict[str, Any] = {
        "label": args.label,
        "conditions": ctx.end(conditions),
        "operations": aggregate(samples[last], quiet[last]),
        "imports": imp[last],
    }
    if args.before:
        result["before"] = {
            "label": args.before_label,
            "operations": aggregate(samples["before"], quiet["before"]),
            "imports": imp["before"],
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {OUT / args.out}.json and .md; the raw logs are in {logs}")
    table = to_markdown(result)
    (OUT / f"{args.out}.md").write_text(table)
    say(table)
    if args.write_docs:
        changed = rewrite("profile", table, readme=DOCS)
        say(f"{'rewrote' if changed else 'unchanged:'} docs/benchmarks.md's profile block")
    return 0


def _brief(ops: dict[str, Operation]) -> str:
    return ", ".join(f"{k} {o.wall_s} s / {o.cpu_s} CPU s" for k, o in ops.items())
