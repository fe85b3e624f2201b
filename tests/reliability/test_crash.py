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
``PRENV_CHAOS_SEED`` and ``PRENV_CHAOS_KILLS`` change the seed and the number of kills.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

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
    error: str = ""


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

    def write() -> None:
        prs = [{"number": n, "sha": sha, "branch": f"b-{n}", "labels": ["preview"]} for n, sha in open_prs.items()]
        prs_file.write_text(yaml.safe_dump(prs))

    for i in range(KILLS):
        kind = "up" if i % 2 == 0 else "destroy"
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
            assert reached or child.proc.poll() is not None, f"the driver ran 120 s without pulumi output for pr-{n}"
        time.sleep(delay)
        landed = child.kill_group()
        assert not harness.group_alive(child.proc.pid), "a process of the killed driver survived"
        orphaned = sessions_of(child.proc.pid)

        started = time.monotonic()
        done = cli.run("sync")
        seconds = time.monotonic() - started
        stray = sum(len(session_members(sid)) for sid in orphaned)
        if done.returncode == 0:
            took[kind] = seconds
        left = harness.leftovers(used=used, wanted=open_prs, core=core, admin_dsn=postgres.dsn, backend=backend)
        trials.append(
            Trial(
                kind,
                n,
                delay,
                landed,
                done.returncode == 0,
                seconds,
                left,
                _phase(child.lines, n),
                stray,
                done.stderr[-1500:] if done.returncode else "",
            )
        )

    open_prs.clear()
    write()
    final = cli.run("sync")
    final_left = harness.leftovers(used=used, wanted=(), core=core, admin_dsn=postgres.dsn, backend=backend)
    plan = cli.run("sync", "--dry-run", "--json")

    failures = [
        t for t in trials if not t.converged or t.leftovers.missing or t.leftovers.half_branches or t.stray_processes
    ]
    totals: dict[str, int] = {}
    for t in trials:
        for key, value in t.leftovers.counts().items():
            totals[key] = totals.get(key, 0) + value
    orphans = sum(t.leftovers.orphans() for t in trials)
    harness.record(
        "crash-kill-9",
        "kill -9 of the driver (prenv + pulumi) during up / destroy, then `prenv sync`",
        trials=len(trials),
        failures=len(failures),
        orphans=orphans,
        order=10,
        unit="kills",
        seed=SEED,
        kills_during_up=sum(t.kind == "up" for t in trials),
        kills_during_destroy=sum(t.kind == "destroy" for t in trials),
        kills_landed_mid_run=sum(t.landed for t in trials),
        kills_by_phase={
            f"{kind} {phase}": sum(t.kind == kind and t.phase == phase for t in trials)
            for kind in ("up", "destroy")
            for phase in ("start-up", "pulumi", "after pulumi")
        },
        median_restart_seconds=round(statistics.median(t.converge_seconds for t in trials), 1),
        **{f"orphan_{k}": v for k, v in totals.items()},
        final_orphans=final_left.orphans(),
        leftover_processes=sum(t.stray_processes for t in trials),
        failed=[f"{t.kind} pr-{t.pr} after {t.delay:.1f}s: {t.error[-300:]}" for t in failures][:5],
    )

    assert not failures, "\n".join(
        f"{t.kind} pr-{t.pr} (kill after {t.delay:.1f}s): {t.leftovers} {t.error}" for t in failures
    )
    assert orphans == 0, [t.leftovers for t in trials if t.leftovers.orphans()]
    assert sum(t.stray_processes for t in trials) == 0, [(t.kind, t.pr, t.stray_processes) for t in trials]
    assert sum(t.landed for t in trials) >= KILLS * 3 // 4, "most kills should land while the driver runs"
    assert final.returncode == 0, final.stderr[-2000:]
    assert final_left.orphans() == 0, final_left
    assert plan.returncode == 0 and yaml.safe_load(plan.stdout) == {
        "create": [],
        "update": [],
        "destroy": [],
        "unchanged": [],
    }
