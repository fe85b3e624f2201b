"""A PR source backed by a PostgreSQL table that CI writes (the Lynq pattern: a database row drives a stack).

For setups where the driver may not call GitHub (air-gapped clusters, other forges, merge queues): CI upserts one
row per PR on every push or label change and deletes the row, or sets ``active = false``, when the PR closes. The
driver reads the active rows once per cycle. ``ensure_table()``, ``upsert()``, ``deactivate()`` and ``delete()``
are the helpers CI uses, so that writer and reader agree on the schema.

Rows are validated like every other source's records: CI writes whatever the PR says, including hostile titles.
The table name is configuration, validated as a plain identifier and always composed with ``sql.Identifier``.
A connection is opened per call: one listing per cycle does not need a pool, and a server restart between cycles
then costs nothing. Error messages carry SQLSTATE codes and exception class names, never the DSN or server text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prenv.errors import ConfigError, SourceError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources.records import InvalidRecord, as_record, parse_records, validate

logger = logging.getLogger(__name__)

DEFAULT_TABLE = "prenv_pull_requests"
# A plain, unquoted-style identifier within PostgreSQL's 63-byte limit, optionally schema-qualified.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_COLUMNS = ("number", "sha", "branch", "base", "author", "title", "labels", "draft", "fork", "updated_at")
# SQLSTATE classes that retrying will not fix: authorization (28), missing database (3D), missing table or
# column and other syntax/privilege problems (42).
_PERMANENT_SQLSTATE_CLASSES = ("28", "3D", "42")


class PostgresTableSource:
    """Lists the active rows of a PR table.

    Args:
        dsn: libpq connection string or URL (from env or a file; never logged).
        table: table name, optionally ``schema.table``; lowercase identifiers only.
        connect_timeout: seconds to wait for a connection.
        statement_timeout: seconds a query may run.

    Raises:
        ConfigError: the table name is not a plain identifier (key ``postgres.table``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        connect_timeout: int = 5,
        statement_timeout: int = 10,
    ) -> None:
        parts = table.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            raise ConfigError("postgres.table", "expected a lowercase identifier, optionally schema-qualified")
        self._dsn = dsn
        self.table = table
        self._table = sql.Identifier(*parts)
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout * 1000

    def __repr__(self) -> str:  # the DSN may hold a password
        return f"PostgresTableSource(table={self.table!r})"

    def list_open(self) -> list[PullRequest]:
        query = sql.SQL("SELECT {columns} FROM {table} WHERE active ORDER BY number").format(
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), table=self._table
        )
        with self._connect() as conn, self._translate("list pull requests"):
            rows = conn.execute(query).fetchall()
        prs = parse_records(rows, source=f"postgres {self.table}")
        logger.debug("postgres %s: %d open pull requests (%d rows)", self.table, len(prs), len(rows))
        return prs

    def ensure_table(self) -> None:
        """Create the table and its index if they do not exist (idempotent; for CI and the demo)."""
        statement = sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {table} (
                number     integer     PRIMARY KEY CHECK (number > 0),
                sha        text        NOT NULL,
                branch     text        NOT NULL,
                base       text        NOT NULL DEFAULT 'main',
                author     text        NOT NULL DEFAULT '',
                title      text        NOT NULL DEFAULT '',
                labels     text[]      NOT NULL DEFAULT '{{}}',
                draft      boolean     NOT NULL DEFAULT false,
                fork       boolean     NOT NULL DEFAULT false,
                active     boolean     NOT NULL DEFAULT true,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """
        ).format(table=self._table)
        with self._connect() as conn, self._translate("create the table"):
            conn.execute(statement)

    def upsert(self, pr: PullRequest) -> None:
        """Insert or replace the row of ``pr`` and mark it active (CI: PR opened, pushed, relabelled, reopened).

        Raises:
            ValueError: ``pr`` would be skipped by the reader (bad sha, control characters...); the message
                gives the reason without quoting the input.
        """
        try:
            pr = validate(pr)
        except InvalidRecord as e:
            raise ValueError(f"PR #{pr.number} is not a valid record: {e.reason}") from None
        statement = sql.SQL(
            """
            INSERT INTO {table} (number, sha, branch, base, author, title, labels, draft, fork, active, updated_at)
            VALUES (%(number)s, %(sha)s, %(branch)s, %(base)s, %(author)s, %(title)s, %(labels)s, %(draft)s,
                    %(fork)s, true, coalesce(%(updated_at)s, now()))
            ON CONFLICT (number) DO UPDATE SET
                sha = excluded.sha, branch = excluded.branch, base = excluded.base, author = excluded.author,
                title = excluded.title, labels = excluded.labels, draft = excluded.draft, fork = excluded.fork,
                active = true, updated_at = excluded.updated_at
            """
        ).format(table=self._table)
        params = as_record(pr)
        with self._connect() as conn, self._translate("upsert a pull request"):
            conn.execute(statement, params)

    def deactivate(self, number: int) -> bool:
        """Mark PR ``number`` closed, keeping its row (for audit). Returns whether a row was active."""
        statement = sql.SQL(
            "UPDATE {table} SET active = false, updated_at = now() WHERE number = %s AND active"
        ).format(table=self._table)
        with self._connect() as conn, self._translate("deactivate a pull request"):
            return conn.execute(statement, (number,)).rowcount > 0

    def delete(self, number: int) -> bool:
        """Delete the row of PR ``number`` (CI: PR closed). Returns whether a row existed."""
        statement = sql.SQL("DELETE FROM {table} WHERE number = %s").format(table=self._table)
        with self._connect() as conn, self._translate("delete a pull request"):
            return conn.execute(statement, (number,)).rowcount > 0

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self._translate("connect"):
            conn = psycopg.connect(
                self._dsn,
                connect_timeout=self._connect_timeout,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
                application_name="prenv",
                row_factory=dict_row,
                autocommit=True,
            )
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        where = f"postgres {self.table}: cannot {what}"
        try:
            yield
        except psycopg.Error as e:
            code = e.sqlstate or _connection_failure_code(e)
            detail = f"{type(e).__name__}, SQLSTATE {code}" if code else type(e).__name__
            if code and code[:2] in _PERMANENT_SQLSTATE_CLASSES:
                hint = " (run ensure_table() first?)" if code == "42P01" else ""
                raise SourceError(f"{where} ({detail}){hint}") from e
            raise SourceUnavailable(f"{where} ({detail})") from e


def _connection_failure_code(error: psycopg.Error) -> str | None:
    """libpq reports connection failures as text without a SQLSTATE; recover the two that retrying won't fix."""
    if not isinstance(error, psycopg.OperationalError):
        return None
    text = str(error)
    if "password authentication failed" in text or "no pg_hba.conf entry" in text:
        return "28P01"
    if re.search(r'database ".*" does not exist', text):
        return "3D000"
    return None
