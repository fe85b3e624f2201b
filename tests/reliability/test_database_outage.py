"""PostgreSQL goes down during create: a clear error, retried with backoff, and never a role without its database
(or the reverse) once it converges.

A dedicated server (devtools.localdb.LocalPostgres) so that stopping it affects no other test. Two kinds of trials:

- down before the create: every attempt while it is down fails with a temporary error naming the server (never
  the DSN or its password), the cycles within the backoff skip the PR, and the first attempt after it is back
  creates the environment;
- down in the middle of a create, a seeded random moment (0-1.5 s) after the database provider started creating
  the branch, while a session on the seed holds CREATE DATABASE back: the attempt fails, the server comes back, and
  the next sync converges.

What the outage left half-made (a role without its database: CREATE DATABASE cannot share a transaction with CREATE
ROLE, and the create's own undo needs the server that just went away) is counted as measured, each branch with what
was left of it and how it was repaired: by the retried create (prenv.db.create_branch keeps the existing role, resets
its password and creates the database), checked complete afterwards. The row's title carries those counts. After the
clean-up, pending operations in the checkpoints and pulumi processes still running are counted (both must be 0).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from kubernetes import client
from psycopg import sql

from devtools.localdb import LocalPostgres
from prenv import driver, settings
from prenv.cluster import ClusterInfo
from prenv.reconcile import CycleResult, SkipReason
from tests.fixtures.preview import SEED, unique_pr, write_project
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.chaos]

SEED_RANDOM = int(os.environ.get("PRENV_CHAOS_SEED", "20261201"))
BACKOFF = 2.0
ATTEMPTS_WHILE_DOWN = 2
MID_CREATE_TRIALS = 3


@pytest.fixture
def dedicated_postgres() -> Iterator[LocalPostgres]:
    data_dir = Path(tempfile.mkdtemp(prefix="prenv-pg-outage-"))
    server = LocalPostgres(data_dir)
    try:
        server.start()
        COLLECTOR.register("dedicated PostgreSQL password", server.password)
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SEED)))
        with psycopg.connect(server.dsn_for(SEED), autocommit=True) as conn:
            conn.execute("CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL)")
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class _Watch(logging.Handler):
    """Sets ``event`` when a pulumi output line of one stack mentions ``needle``."""

    def __init__(self, prefix: str, needle: str, event: threading.Event) -> None:
        super().__init__(logging.DEBUG)
        self.prefix, self.needle, self.event = prefix, needle, event

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.prefix in message and self.needle in message:
            self.event.set()


def _half(pg: LocalPostgres, n: int) -> str:
    """What is half-made of PR ``n``'s branch: "role without database", "database without role" or ""."""
    database, role = harness.branch_exists(pg.dsn, f"pr_{n}")
    if database == role:
        return ""
    return "role without database" if role else "database without role"


REPAIR = "the retried create (existing role kept, its password reset, the database created)"


def test_postgres_down_during_create_is_a_clear_temporary_error_retried_until_it_converges_without_half_branches(
    tmp_path: Path,
    driver_env: dict[str, str],
    cluster: ClusterInfo,
    cluster_api: client.ApiClient,
    dedicated_postgres: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg = dedicated_postgres
    rng = random.Random(SEED_RANDOM)
    project = write_project(
        tmp_path / "project",
        baseDomain="preview.test",
        database={"enabled": True, "namePrefix": "pr_", "template": SEED},
    )
    backend_url = f"file://{tmp_path / 'state'}"
    prs_file = tmp_path / "prs.yaml"
    config = tmp_path / "prenv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "project_dir": str(project),
                "source": {"type": "file", "file": {"path": str(prs_file)}},
                "filters": {"labels": ["preview"]},
                "state": {"backend": backend_url},
                "reconcile": {"backoff_base_seconds": BACKOFF, "backoff_max_seconds": 60},
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("PRENV_DATABASE_ADMIN_DSN", pg.dsn)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", harness.PASSPHRASE)
    d = driver.build(settings.load(config))
    core = client.CoreV1Api(cluster_api)
    backend = harness.backend_of(backend_url)
    opened: list[int] = []

    def open_pr() -> int:
        n = unique_pr()
        opened.append(n)
        prs_file.write_text(
            yaml.safe_dump([{"number": p, "sha": "d" * 40, "branch": "b", "labels": ["preview"]} for p in opened])
        )
        return n

    def sync() -> CycleResult:
        result = d.reconciler.sync()
        for o in result.outcomes:
            COLLECTOR.expose("outcome error", o.error)
        return result

    def converge(n: int, timeout: float = 300) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = sync()
            mine = [o for o in result.outcomes if o.action.pr == n]
            if any(o.ok for o in mine):
                return True
            if any(o.skipped is SkipReason.ALREADY_REPORTED for o in mine):
                problems.append(f"pr-{n}: the outage was taken for a permanent error and is not retried")
                return False
            time.sleep(0.5)
        return False

    problems: list[str] = []
    half_made: list[dict[str, str]] = []  # each branch the outage left half-made, and how it was repaired

    def note_half_made(n: int, when: str) -> str:
        left = _half(pg, n)
        if left:
            half_made.append({"branch": f"pr_{n}", "when": when, "left": left})
        return left

    # 1. Down before the create.
    n = open_pr()
    pg.stop()
    attempts: list[tuple[float, str, bool]] = []
    skipped = 0
    started = time.monotonic()
    while len(attempts) < ATTEMPTS_WHILE_DOWN and time.monotonic() - started < 300:
        for o in sync().outcomes:
            if o.skipped is SkipReason.BACKING_OFF:
                skipped += 1
            elif o.skipped is not None:
                continue
            elif o.action.pr == n:
                attempts.append((time.monotonic() - started, o.error or "", o.temporary))
                if o.ok:
                    problems.append("a create succeeded with PostgreSQL down")
        time.sleep(0.5)
    pg.start()
    note_half_made(n, "down before the create")
    for _, error, temporary in attempts:
        if not temporary:
            problems.append("the error was not temporary")
        if f"cannot connect to PostgreSQL at 127.0.0.1:{pg.port}" not in error:
            problems.append(f"unclear error: {error[:200]}")
    if skipped == 0:
        problems.append("no cycle was skipped by the backoff")
    gap = attempts[1][0] - attempts[0][0] if len(attempts) > 1 else 0.0
    if gap < BACKOFF * 0.9:
        problems.append(f"retried after {gap:.1f}s, before the backoff of {BACKOFF}s")
    if not converge(n):
        problems.append(f"pr-{n} did not converge after PostgreSQL returned")

    # 2. Down in the middle of a create: a seeded moment after the database provider starts creating the branch.
    mid_trials = []
    for _ in range(MID_CREATE_TRIALS):
        n = open_pr()
        creating = threading.Event()
        watcher = _Watch(f"pr-{n} |", "env-database-branch creating", creating)
        logging.getLogger("prenv.gateway.workspace").addHandler(watcher)
        # A session on the seed makes CREATE DATABASE ... TEMPLATE wait (prenv.db retries it for seconds) after CREATE
        # ROLE: it widens the window between the two statements so that the outage lands inside it.
        holder = psycopg.connect(pg.dsn_for(SEED))
        results: list[CycleResult] = []
        worker = threading.Thread(target=lambda out=results: out.append(sync()))
        worker.start()
        delay = rng.uniform(0.0, 1.5)
        reached = creating.wait(timeout=300)
        time.sleep(delay)
        pg.stop()
        holder.close()
        worker.join(timeout=600)
        logging.getLogger("prenv.gateway.workspace").removeHandler(watcher)
        mine = [o for o in results[0].outcomes if o.action.pr == n] if results else []
        outcome_ok = bool(mine) and all(o.ok for o in mine)
        if not outcome_ok and not all(o.temporary for o in mine):
            problems.append(f"pr-{n}: the mid-create outage was not a temporary error: {[o.error for o in mine]}")
        pg.start()
        half = note_half_made(n, f"down {delay:.2f}s into the create")
        if not reached:
            problems.append(f"pr-{n}: the database branch was never being created")
        if not outcome_ok and not converge(n):
            problems.append(f"pr-{n} did not converge after PostgreSQL returned mid-create")
        mid_trials.append((round(delay, 2), outcome_ok, half))

    after = harness.leftovers(used=opened, wanted=opened, core=core, admin_dsn=pg.dsn, backend=backend)
    if after.half_branches or after.missing:
        problems.append(f"after convergence: half {after.half_branches}, missing {after.missing}")
    if after.pending:
        problems.append(f"pending operations after convergence on {list(after.pending)}")
    for h in half_made:
        complete = harness.branch_exists(pg.dsn, h["branch"]) == (True, True)
        h["repaired_by"] = REPAIR if complete else "not repaired"
        if not complete:
            problems.append(f"{h['branch']} ({h['left']}) was not repaired by the retry")

    prs_file.write_text("[]\n")
    cleanup = sync()
    gone = harness.leftovers(used=opened, wanted=(), core=core, admin_dsn=pg.dsn, backend=backend)
    processes = harness.leftover_processes()
    if not all(o.ok for o in cleanup.outcomes):
        problems.append(f"clean-up failed: {[o.error for o in cleanup.outcomes]}")
    if gone.orphans() or gone.pending:
        problems.append(f"after the clean-up: {gone}")
    if processes:
        problems.append(f"{len(processes)} pulumi processes still running after the clean-up")
    repaired = sum(h["repaired_by"] == REPAIR for h in half_made)
    kinds = " (" + ", ".join(sorted({h["left"] for h in half_made})) + ")" if half_made else ""
    harness.record(
        "database-outage",
        "PostgreSQL down during create: clear temporary error, retried with backoff; half-made branches left by the "
        f"outage: {len(half_made)}{kinds}, repaired by the retried create: {repaired}",
        trials=len(attempts) + len(mid_trials),
        failures=len(problems),
        orphans=gone.orphans(),
        pending=len(after.pending) + len(gone.pending),
        processes=len(processes),
        order=35,
        unit="creates",
        attempts_while_down=len(attempts),
        cycles_skipped_by_backoff=skipped,
        mid_create_trials=[{"stop_after_s": t[0], "attempt_succeeded": t[1], "half_made": t[2]} for t in mid_trials],
        half_made_right_after_outage=len(half_made),
        half_made_repaired_by_retry=repaired,
        half_made_branches=half_made,
        half_made_after_convergence=len(after.half_branches),
        problems=problems[:10],
    )
    assert not problems, problems
