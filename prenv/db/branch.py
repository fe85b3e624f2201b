"""A database branch per PR on a shared PostgreSQL server: role + database, created and dropped idempotently.

Plain psycopg, no Pulumi: the dynamic provider (components/database.py) calls these functions, and so do `prenv gc`,
the bench and the tests. Every identifier is composed with ``psycopg.sql.Identifier`` and every value with
``sql.Literal`` or a bind parameter; names come from prenv.naming (PR number + validated prefix), never from PR
metadata.

Each step checks before acting, so a retry after a crash between CREATE ROLE and CREATE DATABASE (or halfway through
a drop) converges instead of failing. Failures are ``prenv.errors.DatabaseError``, temporary when a retry may cure
them (server unreachable, connection lost, template busy); their messages name the server (host:port) but never the
DSN or a password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from prenv.errors import DatabaseError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10
TEMPLATE_BUSY_RETRIES = 8
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True, slots=True)
class Branch:
    """What the app needs to reach its database (the password is delivered separately, as a secret)."""

    database: str
    role: str
    host: str
    port: int


def server_of(dsn: str) -> tuple[str, int]:
    """(host, port) of a DSN, for messages and for the app's connection string."""
    info = conninfo_to_dict(dsn)
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    return host, int(info.get("port") or 5432)


@contextmanager
def _admin(dsn: str, dbname: str | None = None) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    host, port = server_of(dsn)
    kwargs: dict[str, object] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
    if dbname:
        kwargs["dbname"] = dbname
    try:
        conn = psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as e:
        raise DatabaseError(f"cannot connect to PostgreSQL at {host}:{port}: {_reason(e)}", temporary=True) from None
    try:
        yield conn
    except psycopg.errors.QueryCanceled as e:
        raise DatabaseError(f"PostgreSQL at {host}:{port} timed out: {_reason(e)}", temporary=True) from None
    except psycopg.OperationalError as e:
        raise DatabaseError(f"PostgreSQL at {host}:{port} failed: {_reason(e)}", temporary=True) from None
    except psycopg.Error as e:
        raise DatabaseError(f"PostgreSQL at {host}:{port} refused: {_reason(e)}") from None
    finally:
        conn.close()


def _reason(e: psycopg.Error) -> str:
    """A short reason: the SQLSTATE name and the server's primary message, which never echoes our password."""
    diag = getattr(e, "diag", None)
    primary = diag.message_primary if diag is not None and diag.message_primary else None
    if primary:
        return f"{primary} ({e.sqlstate})" if e.sqlstate else primary
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text.split("password")[0].strip() or type(e).__name__


def role_exists(conn: psycopg.Connection[tuple[object, ...]], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def database_exists(conn: psycopg.Connection[tuple[object, ...]], database: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def create_branch(
    admin_dsn: str, name: str, password: str, *, template: str | None = None, seed_sql: str | None = None
) -> Branch:
    """Create role ``name`` (LOGIN, the given password) and database ``name`` owned by it; idempotent.

    With ``template``, the database is a copy of that seed database (fast, branch-like); otherwise it starts empty and
    ``seed_sql`` runs in it as the new role. CONNECT is revoked from PUBLIC so other PRs' roles cannot open it.
    """
    host, port = server_of(admin_dsn)
    ident = sql.Identifier(name)
    with _admin(admin_dsn) as conn:
        if template and not database_exists(conn, template):
            raise DatabaseError(f"template database {template!r} does not exist on {host}:{port}")
        role_created = False
        if role_exists(conn, name):
            conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(ident, sql.Literal(password)))
        else:
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    ident, sql.Literal(password)
                )
            )
            role_created = True
        created = False
        if not database_exists(conn, name):
            try:
                _create_database(conn, name, template)
            except (DatabaseError, psycopg.Error):
                # Never leave a role without its database: undo what this call made, then report.
                if role_created:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
                raise
            created = True
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(ident))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(ident, ident))
    if created or template:
        with _admin(admin_dsn, dbname=name) as db:
            _hand_over_objects(db, name)
    if created and seed_sql and not template:
        with _admin(admin_dsn, dbname=name) as db:
            db.execute(sql.SQL("SET ROLE {}").format(ident))
            db.execute(seed_sql.encode())
    logger.info("database branch %s ready on %s:%s", name, host, port)
    return Branch(database=name, role=name, host=host, port=port)


def _create_database(conn: psycopg.Connection[tuple[object, ...]], name: str, template: str | None) -> None:
    stmt = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
    if template:
        stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        if conn.info.server_version >= 150000:
            # PostgreSQL 15 defaults to WAL_LOG, which writes the whole template through the WAL; FILE_COPY copies
            # the files after one checkpoint, several times faster for a seed of any size (bench/db_branch.py).
            stmt = sql.SQL("{} STRATEGY = FILE_COPY").format(stmt)
    for attempt in range(TEMPLATE_BUSY_RETRIES):
        try:
            conn.execute(stmt)
            return
        except psycopg.errors.ObjectInUse:
            # CREATE DATABASE … TEMPLATE needs the seed to have no other sessions; they are usually short-lived.
            if attempt == TEMPLATE_BUSY_RETRIES - 1:
                raise DatabaseError(
                    f"template database {template!r} is in use by other sessions", temporary=True
                ) from None
            time.sleep(0.2 * (attempt + 1))


def _hand_over_objects(db: psycopg.Connection[tuple[object, ...]], role: str) -> None:
    """Make the PR's role own what the template copied in, so its migrations can ALTER and DROP them."""
    ident = sql.Identifier(role)
    schemas = db.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s) AND nspname NOT LIKE 'pg\\_%%'",
        (list(_SYSTEM_SCHEMAS),),
    ).fetchall()
    for (schema,) in schemas:
        db.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(str(schema)), ident))
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}
    rows = db.execute(
        """
        SELECT n.nspname, c.relname, c.relkind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = ANY(%s) AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i', 'e')
                          AND d.classid = 'pg_class'::regclass)
        """,
        (list(kinds), list(_SYSTEM_SCHEMAS)),
    ).fetchall()
    for schema, rel, kind in rows:
        db.execute(
            sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                sql.SQL(kinds[str(kind)]), sql.Identifier(str(schema)), sql.Identifier(str(rel)), ident
            )
        )


def drop_branch(admin_dsn: str, name: str) -> None:
    """Terminate the database's sessions, drop it, then drop the role; idempotent."""
    host, port = server_of(admin_dsn)
    ident = sql.Identifier(name)
    with _admin(admin_dsn) as conn:
        if database_exists(conn, name):
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        if role_exists(conn, name):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
    logger.info("database branch %s dropped on %s:%s", name, host, port)


def list_branches(admin_dsn: str, prefix: str) -> tuple[list[str], list[str]]:
    """(databases, roles) whose names are ``<prefix><digits>``: what `prenv gc` compares with the stacks."""
    pattern = "^" + "".join("\\" + c if not c.isalnum() else c for c in prefix) + "[0-9]+$"
    with _admin(admin_dsn) as conn:
        dbs = [str(r[0]) for r in conn.execute("SELECT datname FROM pg_database WHERE datname ~ %s", (pattern,))]
        roles = [str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (pattern,))]
    return sorted(dbs), sorted(roles)
