"""kill -9 of the driver at seeded random points during up and during destroy; the next `prenv sync` converges.

The driver is `prenv -v sync` started in its own process group, and ``os.killpg(SIGKILL)`` kills it as an OOM kill
would. Its pulumi operation runs in a session of its own (prenv.gateway.sessions) and survives the kill, as it would
survive a crashed driver: the next driver's start-up must end it, engine, language host, providers and the dynamic
database provider alike. Rounds alternate: open a PR and kill the sync that creates it, then close it and kill the
sync that destroys it. After each kill one plain `prenv sync` must succeed and leave, for the PRs used so far, exactly
the open PRs' environments: no namespace, database, role or stack of a closed PR, no lock, no pending operation, and
no process of the killed driver's pulumi sessions.

The kill point is seeded: half the kills come at a random fraction of how long a complete sync of the same kind took
last time (the restart after the previous kill), anywhere from start-up through stack selection, config, pulumi and
stack removal; the other half at a random moment after pulumi printed its first line for the stack.
Only a kill that lands on a live driver (its process still running when SIGKILL is sent) counts as a trial: the
rounds go on until ``PRENV_CHAOS_KILLS`` (24) kills have landed, at most half as many again attempted. A kill that
came after the driver had exited is still followed by a checked sync (its failures count), but is not a trial; the
record gives both numbers. After every recovery the trial also counts pending operations left in the checkpoints
and the pulumi, language-host and provider processes still running (both must be 0).
``PRENV_CHAOS_SEED`` and ``PRENV_CHAOS_KILLS`` change the seed and the number of landed kills.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devtools.localdb import LocalPostgres
from prenv.driver import session_dir
from prenv.procs import session_members
from tests.fixtures.preview import unique_pr
from tests.reliability import harness
from tests.reliability.harness import Leftovers, Prenv

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.chaos]

SEED = int(os.environ.get("PRENV_CHAOS_SEED", "20261201"))
KILLS = int(os.environ.get("PRENV_CHAOS_KILLS", "24"))
"""Kills that must land on a live driver."""
MAX_ATTEMPTS = KILLS * 3 // 2


@dataclass(frozen=True)
class Trial:
    kind: str  # up | destroy
    pr: int
    delay: float
    landed: bool  # the driver was still running when killed
    converged: bool
    converge_seconds: float
    leftovers: Leftovers
    phase: str  # where the kill landed: start-up (no pulumi output yet), pulumi, or after pulumi (stack rm, exit)
    stray_processes: int  # processes of the killed driver's pulumi sessions still running after the next sync
    processes: tuple[int, ...]  # every pulumi process of this test still running after the next sync
    error: str = ""

    def problems(self) -> list[str]:
        """What broke the promise: the next sync failed, an open PR's environment is incomplete, a branch is
        half-made, an operation is still pending, or a process outlived the recovery."""
        out = []
        if not self.converged:
            out.append(f"the next sync failed: {self.error[-300:]}")
        if self.leftovers.missing:
            out.append(f"missing {list(self.leftovers.missing)}")
        if self.leftovers.half_branches:
            out.append(f"half-made branches {list(self.leftovers.half_branches)}")
        if self.leftovers.orphans():
            out.append(f"orphans {self.leftovers.counts()}")
        if self.leftovers.pending:
            out.append(f"pending operations on {list(self.leftovers.pending)}")
        if self.stray_processes or self.processes:
            out.append(f"{len(self.processes)} pulumi processes still running ({self.stray_processes} of the killed)")
        return out


def sessions_of(driver_pid: int) -> list[int]:
    """The pulumi sessions the driver ``driver_pid`` recorded and did not end (it was killed)."""
    sids = []
    for record in session_dir().glob("*.json"):
        try:
            doc = json.loads(record.read_text())
        except (OSError, ValueError):
            continue  # ended and removed meanwhile
        if doc.get("driver_pid") == driver_pid:
            sids.append(int(doc["sid"]))
    return sids


def _phase(lines: list[str], pr: int) -> str:
    pulumi = [line for line in lines if f"pr-{pr} |" in line]
    if not pulumi:
        return "start-up"
    if any("Duration:" in line for line in pulumi):
        return "after pulumi"
    return "pulumi"


def test_the_driver_killed_during_up_or_destroy_converges_on_the_next_sync_without_orphans(
    tmp_path: Path,
    project_dir: Path,
    backend_url: str,
    driver_env: dict[str, str],
    cluster_api: client.ApiClient,
    postgres: LocalPostgres,
) -> None:
    rng = random.Random(SEED)
    prs_file = tmp_path / "prs.yaml"
    cli = Prenv(
        tmp_path / "driver",
        {
            "project_dir": str(project_dir),
            "source": {"type": "file", "file": {"path": str(prs_file)}},
            "filters": {"labels": ["preview"]},
            "state": {"backend": backend_url},
        },
        driver_env,
    )
    core = client.CoreV1Api(cluster_api)
    backend = harness.backend_of(backend_url)
    open_prs: dict[int, str] = {}
    used: set[int] = set()
    took = {"up": 30.0, "destroy": 20.0}  # a first guess; replaced by each complete sync's duration
    trials: list[Trial] = []
    kill_problems: list[str] = []

    def write() -> None:
        prs = [{"number": n, "sha": sha, "branch": f"b-{n}", "labels": ["preview"]} for n, sha in open_prs.items()]
        prs_file.write_text(yaml.safe_dump(prs))

    def landed() -> int:
        return sum(t.landed for t in trials)

    i = 0
    while landed() < KILLS and i < MAX_ATTEMPTS:
        kind = "up" if i % 2 == 0 else "destroy"
        i += 1
        if kind == "up":
            n = unique_pr()
            used.add(n)
            open_prs[n] = f"{rng.getrandbits(160):040x}"
        else:
            n = min(open_prs)
            del open_prs[n]
        write()
        child = cli.start("sync", verbose=True)
        if rng.random() < 0.5:  # anywhere in the run: start-up, stack selection, config, pulumi, stack rm
            delay = rng.uniform(0.05, 0.95) * took[kind]
        else:  # inside pulumi: after its first output line for this stack
            delay = rng.uniform(0.0, 0.6) * took[kind]
            reached = child.wait_for(f"pr-{n} |", timeout=120)
            if not reached and child.proc.poll() is None:
                kill_problems.append(f"{kind} pr-{n}: the driver ran 120 s without pulumi output")
        time.sleep(delay)
        alive = child.kill_group()
        if harness.group_alive(child.proc.pid):
            kill_problems.append(f"{kind} pr-{n}: a process of the killed driver's group survived SIGKILL")
        orphaned = sessions_of(child.proc.pid)

        started = time.monotonic()
        done = cli.run("sync")
        seconds = time.monotonic() - started
        stray = sum(len(session_members(sid)) for sid in orphaned)
        if done.returncode == 0:
            took[kind] = seconds
        left = harness.leftovers(used=used, wanted=open_prs, core=core, admin_dsn=postgres.dsn, backend=backend)
        running = tuple(harness.leftover_processes())
        trials.append(
            Trial(
                kind,
                n,
                delay,
                alive,
                done.returncode == 0,
                seconds,
                left,
                _phase(child.lines, n),
                stray,
                running,
                done.stderr[-1500:] if done.returncode else "",
            )
        )

    open_prs.clear()
    write()
    final = cli.run("sync")
    final_left = harness.leftovers(used=used, wanted=(), core=core, admin_dsn=postgres.dsn, backend=backend)
    plan = cli.run("sync", "--dry-run", "--json")
    final_processes = harness.leftover_processes()

    problems = [f"{t.kind} pr-{t.pr} (kill after {t.delay:.1f}s, {t.phase}): {p}" for t in trials for p in t.problems()]
    problems += kill_problems
    if landed() < KILLS:
        problems.append(f"only {landed()} of {len(trials)} kills landed on a live driver (target {KILLS})")
    if final.returncode != 0:
        problems.append(f"the final sync failed: {final.stderr[-500:]}")
    if final_left.orphans() or final_left.pending:
        problems.append(f"after the final sync: {final_left}")
    if plan.returncode != 0 or yaml.safe_load(plan.stdout or "null") != {
        "create": [],
        "update": [],
        "destroy": [],
        "unchanged": [],
    }:
        problems.append(f"the final plan is not empty: {plan.stdout[-300:]} {plan.stderr[-300:]}")
    if final_processes:
        problems.append(f"{len(final_processes)} pulumi processes still running after the final sync")

    landed_trials = [t for t in trials if t.landed]
    totals: dict[str, Any] = {}
    for t in trials:
        for key, value in t.leftovers.counts().items():
            totals[key] = totals.get(key, 0) + value
    processes = {pid for t in trials for pid in t.processes} | set(final_processes)
    harness.record(
        "crash-kill-9",
        "kill -9 of the driver (prenv + pulumi) during up / destroy, then `prenv sync`; only kills that landed on a "
        "live driver count",
        trials=len(landed_trials),
        failures=len(problems),
        orphans=sum(t.leftovers.orphans() for t in trials) + final_left.orphans(),
        pending=sum(len(t.leftovers.pending) for t in trials) + len(final_left.pending),
        processes=len(processes),
        order=10,
        unit=f"kills landed ({len(trials)} attempted)",
        seed=SEED,
        kills_attempted=len(trials),
        kills_landed=len(landed_trials),
        kills_after_the_driver_exited=len(trials) - len(landed_trials),
        landed_during_up=sum(t.kind == "up" for t in landed_trials),
        landed_during_destroy=sum(t.kind == "destroy" for t in landed_trials),
        landed_by_phase={
            f"{kind} {phase}": sum(t.kind == kind and t.phase == phase for t in landed_trials)
            for kind in ("up", "destroy")
            for phase in ("start-up", "pulumi", "after pulumi")
        },
        median_restart_seconds=round(statistics.median(t.converge_seconds for t in trials), 1),
        **{f"orphan_{k}": v for k, v in totals.items()},
        final_orphans=final_left.orphans(),
        killed_driver_processes_left=sum(t.stray_processes for t in trials),
        pulumi_processes_left=len(processes),
        failures_counted_over="every attempt (landed or not), the final sync and its empty plan",
        problems=problems[:5],
    )

    assert not problems, "\n".join(problems)
