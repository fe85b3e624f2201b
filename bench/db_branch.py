"""Database branch: ``CREATE DATABASE … TEMPLATE`` of a ~200 MB seed vs ``pg_dump | psql`` of the same seed.

The floor is what a preview system without branches does to give each PR its own copy of the data. Both run on
one local PostgreSQL server started for the benchmark; the ratio is what holds across machines.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.conditions import Context, summarise
from devtools.localdb import LocalPostgres, find_binaries
from prenv import db

SEED = "bench_seed"


def _seed(pg: LocalPostgres, megabytes: int) -> int:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SEED)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SEED)))
    with psycopg.connect(pg.dsn_for(SEED), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer int, note text, created timestamptz)")
        rows = megabytes * 1024 * 1024 // 152  # ~152 bytes per row on disk with the index (measured)
        conn.execute(
            "INSERT INTO orders (customer, note, created) SELECT g %% 1000, md5(g::text) || md5((g*7)::text), "
            "now() - (g || ' seconds')::interval FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CREATE INDEX ON orders (customer)")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(size[0]) if size else 0


def run(ctx: Context, runs: int = 5, megabytes: int = 200) -> dict[str, Any]:
    conditions = ctx.begin(
        cluster="none (one local PostgreSQL)", seed=f"~{megabytes} MiB", parallelism=None, samples=runs
    )
    data_dir = Path(tempfile.mkdtemp(prefix="prenv-bench-pg-"))
    pg = LocalPostgres(data_dir)
    pg.start()
    try:
        size = _seed(pg, megabytes)
        bindir = find_binaries()
        branch, dump = [], []
        for _ in range(runs):
            name = f"pr_{uuid.uuid4().int % 10**8 + 1}"
            t0 = time.perf_counter()
            db.create_branch(pg.dsn, name, "bench-pw", template=SEED)
            branch.append(time.perf_counter() - t0)
            db.drop_branch(pg.dsn, name)

            copy = f"copy_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy)))
            t0 = time.perf_counter()
            env = {"PGPASSWORD": pg.password}
            host, port = db.server_of(pg.dsn)
            dump_cmd = [str(bindir / "pg_dump"), "-h", host, "-p", str(port), "-U", "postgres", SEED]
            load_cmd = [str(bindir / "psql"), "-q", "-h", host, "-p", str(port), "-U", "postgres", "-d", copy]
            with subprocess.Popen(dump_cmd, stdout=subprocess.PIPE, env=env) as p_dump:
                subprocess.run(load_cmd, stdin=p_dump.stdout, env=env, check=True, stdout=subprocess.DEVNULL)
            dump.append(time.perf_counter() - t0)
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(copy)))
        template, dumped = summarise(branch, 3), summarise(dump, 3)
        return {
            "seed_bytes": size,
            "runs": runs,
            "template": template,
            "dump_restore": dumped,
            "ratio": round(dumped["median_s"] / template["median_s"], 1),
            "target_ratio": 10,
            "conditions": ctx.end(conditions),
        }
    finally:
        pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
