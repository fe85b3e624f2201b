"""Under which conditions a figure was measured, and how samples are summarised: what makes a row trustworthy.

A benchmark row is only as good as the machine was quiet. ``machine_load()`` reads the load average and looks for
other work that competes for the same cores (pulumi engines, pytest runs, another real node) — processes that are
not the benchmark's own. ``python -m bench`` refuses to start on a busy machine, or, with ``--under-load``, marks
every row "under load". Each row carries its own :class:`Conditions`: when it ran (start and end), on which
cluster kind (KWOK or the real node), with which seed, parallelism and sample count, the load before and after,
and the command that produced it.

``summarise`` never calls a maximum a p95: a p95 is reported only from at least ``P95_MIN_SAMPLES`` samples; below
that the row shows median, min and max.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

P95_MIN_SAMPLES = 20
# Busy: a 1-minute load average above half the cores, or anything else that runs pulumi, pytest or a node.
BUSY_LOAD_PER_CPU = 0.5
_COMPETITORS = ("pulumi", "pytest", "kubelet", "kube-proxy", "kube-apiserver", "etcd", "traefik")
# A row that finds the machine busy only by its load average (no other process competing) waits this long at most
# for the load left by the benchmark's own previous row to decay (the 1-minute average falls by e every 60 s).
SETTLE_MAX_S = 150.0
SETTLE_POLL_S = 5.0
# The benchmark's own worlds live under temporary directories named so (bench/world.py, bench/realnode.py); their
# detached processes (control plane, node, Traefik) are part of what is measured, not competition.
OWN_MARKER = b"/prenv-bench-"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- samples ---------------------------------------------------------------------------------------------------


def summarise(samples: list[float], digits: int = 2) -> dict[str, Any]:
    """``n``, median, min and max of ``samples``; ``p95_s`` only when there are at least P95_MIN_SAMPLES.

    The p95 is the nearest-rank 95th percentile (the smallest sample with at least 95 % of the samples at or
    below it)."""
    if not samples:
        raise ValueError("no samples to summarise")
    ordered = sorted(samples)
    out: dict[str, Any] = {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), digits),
        "min_s": round(ordered[0], digits),
        "max_s": round(ordered[-1], digits),
    }
    if len(ordered) >= P95_MIN_SAMPLES:
        rank = -(-95 * len(ordered) // 100)  # ceil(0.95 n), 1-based
        out["p95_s"] = round(ordered[rank - 1], digits)
    return out


def describe(summary: dict[str, Any], unit: str = "s") -> str:
    """``median 2.8 s, p95 3.3 s (n=20)`` or ``median 2.8 s (min 2.4, max 3.3; n=10)``."""
    n = summary.get("n")
    median = summary["median_s"]
    if "p95_s" in summary and n is not None and n >= P95_MIN_SAMPLES:
        return f"median {median} {unit}, p95 {summary['p95_s']} {unit} (n={n})"
    if n is None:  # a result from before samples were counted
        return f"median {median} {unit} (sample count not recorded)"
    if n == 1:
        return f"{median} {unit} (1 sample)"
    spread = ", ".join(f"{k} {summary[f'{k}_s']}" for k in ("min", "max") if f"{k}_s" in summary)
    return f"median {median} {unit} ({spread}; n={n})" if spread else f"median {median} {unit} (n={n})"


# --- load ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The machine's load average and the competing processes that are not this benchmark's."""

    load1: float
    load5: float
    cpus: int
    others: tuple[str, ...] = ()

    @property
    def busy(self) -> bool:
        return self.load1 > BUSY_LOAD_PER_CPU * self.cpus or bool(self.others)

    def why(self) -> str:
        reasons = []
        if self.load1 > BUSY_LOAD_PER_CPU * self.cpus:
            reasons.append(f"load average {self.load1:.2f} > {BUSY_LOAD_PER_CPU * self.cpus:g} on {self.cpus} CPUs")
        if self.others:
            shown = ", ".join(self.others[:5]) + (f" and {len(self.others) - 5} more" if len(self.others) > 5 else "")
            reasons.append(f"{len(self.others)} other process(es): {shown}")
        return "; ".join(reasons) or "idle"

    def as_dict(self) -> dict[str, Any]:
        return {"load1": self.load1, "load5": self.load5, "cpus": self.cpus, "others": len(self.others)}


def _parents() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def _ours(pid: int, parents: dict[int, int], me: int) -> bool:
    """``pid`` is this process, one of its ancestors (make, a shell) or one of its descendants."""
    ancestors, p = set(), me
    while p > 1 and p not in ancestors:
        ancestors.add(p)
        p = parents.get(p, 0)
    if pid in ancestors:
        return True
    p = pid
    seen = set()
    while p > 1 and p not in seen:
        if p == me:
            return True
        seen.add(p)
        p = parents.get(p, 0)
    return False


def competitors(me: int | None = None) -> tuple[str, ...]:
    """Other processes on the machine that run pulumi, pytest or cluster components (``pid name``), excluding this
    process, its ancestors and its descendants."""
    me = os.getpid() if me is None else me
    parents = _parents()
    found = []
    for pid in sorted(parents):
        if _ours(pid, parents, me):
            continue
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if OWN_MARKER in raw:
            continue
        argv = raw.split(b"\0")
        words = [Path(a.decode(errors="replace")).name for a in argv[:3] if a]
        hit = next((w for w in words for c in _COMPETITORS if w.startswith(c)), None)
        if hit:
            found.append(f"{pid} {hit}")
    return tuple(found)


def machine_load(me: int | None = None) -> Load:
    one, five, _ = os.getloadavg()
    return Load(round(one, 2), round(five, 2), os.cpu_count() or 1, competitors(me))


def settle(
    *,
    limit: float = SETTLE_MAX_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Load, float]:
    """The machine's load once the benchmark's own residue has decayed, and how many seconds that took.

    The 1-minute load average at a row's start still holds the previous row's work (a burst leaves 3-4 on 2 CPUs);
    that is not competition, and a row must not be called "under load" for it. So a row that finds only a high
    load average waits, up to ``limit`` seconds, for it to fall below the threshold. Other processes (pulumi,
    pytest, a node that is not ours) make the machine busy at once: waiting would hide them."""
    began = clock()
    load = machine_load()
    while load.busy and not load.others and clock() - began < limit:
        sleep(SETTLE_POLL_S)
        load = machine_load()
    return load, round(clock() - began, 1)


# --- a row's conditions ----------------------------------------------------------------------------------------


@dataclass
class Conditions:
    """What a row was measured under; ``finish()`` adds the end time and the load after."""

    cluster: str  # "KWOK (4 fake nodes)", "real node (containerd, kubelet, Traefik)", "none (PostgreSQL only)"
    seed: str
    parallelism: int | None
    samples: int
    command: str
    started: str = field(default_factory=now)
    finished: str = ""
    load_before: dict[str, Any] = field(default_factory=dict)
    load_after: dict[str, Any] = field(default_factory=dict)
    under_load: bool = False
    quick: bool = False  # fewer samples than the documented run: a smoke test of the code, not a figure
    why_under_load: str = ""
    settled_s: float = 0.0  # seconds this row waited for the previous row's load to decay before it started

    @classmethod
    def start(cls, *, quick: bool = False, **kwargs: Any) -> Conditions:
        load, waited = settle()
        c = cls(**kwargs, quick=quick, load_before=load.as_dict(), settled_s=waited)
        if load.busy:
            c.under_load, c.why_under_load = True, f"before: {load.why()}"
        return c

    def finish(self, *, forced_under_load: bool = False) -> dict[str, Any]:
        """The end time and the load after. Afterwards only other processes make a row "under load": the load
        average then is mostly the benchmark's own work (a 5-minute real-node run ends at about 1.2 on 2 CPUs)."""
        load = machine_load()
        self.finished = now()
        self.load_after = load.as_dict()
        if load.others:
            self.under_load = True
            others = Load(0.0, 0.0, load.cpus, load.others)
            self.why_under_load = "; ".join(filter(None, [self.why_under_load, f"after: {others.why()}"]))
        if forced_under_load:
            self.under_load = True
        return asdict(self)


def render_conditions(c: dict[str, Any] | None) -> str:
    """One table cell: cluster, seed, parallelism, samples, when, load — or why it is unknown."""
    if not c:
        return "conditions not recorded (measured before rows carried them)"
    parts = [c["cluster"], f"seed {c['seed']}"]
    if c.get("parallelism") is not None:
        parts.append(f"parallelism {c['parallelism']}")
    parts.append(f"n={c['samples']}")
    start, end = c.get("started", ""), c.get("finished", "")
    when = f"{start[:10]} {start[11:16]}"
    if end:
        when += " to " + (end[11:16] if end[:10] == start[:10] else f"{end[:10]} {end[11:16]}")
    parts.append(when + " UTC")
    before = c.get("load_before") or {}
    if before:
        settled = c.get("settled_s") or 0
        parts.append(f"load {before.get('load1')}" + (f" after {settled:g} s settling" if settled else ""))
    text = ", ".join(parts)
    flags = []
    if c.get("quick"):
        flags.append("**quick run, not a figure**")
    if c.get("under_load"):
        flags.append("**under load**")
    return text + (" — " + ", ".join(flags) if flags else "")


@dataclass(frozen=True)
class Context:
    """How this ``python -m bench`` run was started: every row it writes carries this."""

    command: str
    quick: bool = False
    under_load: bool = False  # started with --under-load on a busy machine: every row is marked

    def begin(self, *, cluster: str, seed: str, parallelism: int | None, samples: int) -> Conditions:
        return Conditions.start(
            cluster=cluster, seed=seed, parallelism=parallelism, samples=samples, command=self.command, quick=self.quick
        )

    def end(self, c: Conditions) -> dict[str, Any]:
        return c.finish(forced_under_load=self.under_load)
