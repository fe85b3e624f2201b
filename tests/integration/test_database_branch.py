"""The database branch per PR against a real PostgreSQL server: create, isolate, drop, and survive half-done work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from components.database import PostgresBranchProvider
from devtools.localdb import LocalPostgres
from prenv import db
from prenv.errors import DatabaseError

pytestmark = pytest.mark.integration


@pytest.fixture
def names(postgres: LocalPostgres) -> Iterator[list[str]]:
    """Branch names handed out to a test; whatever is left is dropped afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        db.drop_branch(postgres.dsn, name)


def fresh(names: list[str]) -> str:
    name = f"pr_{uuid.uuid4().int % 10**8 + 1}"
    names.append(name)
    return name


@pytest.fixture(scope="module")
def seed(postgres: LocalPostgres) -> str:
    """A seed database with a table, owned by the admin, marked as a template nobody connects to."""
    name = f"seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(postgres.dsn_for(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO products (name) VALUES ('teapot'), ('kettle')")
    return name


def connect_as(postgres: LocalPostgres, role: str, password: str, database: str) -> psycopg.Connection:
    host, port = db.server_of(postgres.dsn)
    return psycopg.connect(
        host=host, port=port, user=role, password=password, dbname=database, connect_timeout=5, autocommit=True
    )


def test_a_branch_from_a_template_has_the_seed_data_and_the_pr_role_owns_it(
    postgres: LocalPostgres, seed: str, names: list[str]
) -> None:
    name = fresh(names)
    branch = db.create_branch(postgres.dsn, name, "pw-one", template=seed)
    assert (branch.database, branch.role) == (name, name)
    with connect_as(postgres, name, "pw-one", name) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (2,)
        conn.execute("ALTER TABLE products ADD COLUMN price numeric")  # owner-only: migrations work
        conn.execute("INSERT INTO products (name) VALUES ('cup')")  # the serial's sequence came along


def test_an_empty_branch_runs_the_seed_sql_as_the_pr_role(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    db.create_branch(
        postgres.dsn, name, "pw", seed_sql="CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hi');"
    )
    with connect_as(postgres, name, "pw", name) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("hi",)]
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'").fetchone()
        assert owner == (name,)


def test_one_prs_role_cannot_connect_to_another_prs_database(postgres: LocalPostgres, names: list[str]) -> None:
    a, b = fresh(names), fresh(names)
    db.create_branch(postgres.dsn, a, "pw-a")
    db.create_branch(postgres.dsn, b, "pw-b")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect_as(postgres, a, "pw-a", b)
    connect_as(postgres, b, "pw-b", b).close()


def test_drop_works_while_a_client_is_connected_and_removes_database_and_role(
    postgres: LocalPostgres, names: list[str]
) -> None:
    name = fresh(names)
    db.create_branch(postgres.dsn, name, "pw")
    client = connect_as(postgres, name, "pw", name)
    db.drop_branch(postgres.dsn, name)
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, name)
        assert not db.role_exists(conn, name)
    with pytest.raises(psycopg.OperationalError):
        client.execute("SELECT 1")
    client.close()


def test_create_after_a_crash_between_role_and_database_converges(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:  # what a crash after CREATE ROLE leaves
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'old'").format(sql.Identifier(name)))
    db.create_branch(postgres.dsn, name, "new")
    with connect_as(postgres, name, "new", name) as conn:  # the new password, the database made after the crash
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (name, name)
    db.create_branch(postgres.dsn, name, "new")  # and once more: still fine
    assert branch_of(postgres, name) == ([name], [name])


def test_drop_is_idempotent(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    db.create_branch(postgres.dsn, name, "pw")
    assert branch_of(postgres, name) == ([name], [name])
    db.drop_branch(postgres.dsn, name)
    assert branch_of(postgres, name) == ([], [])
    db.drop_branch(postgres.dsn, name)  # nothing left to drop: no error, and still nothing there
    assert branch_of(postgres, name) == ([], [])


def branch_of(postgres: LocalPostgres, name: str) -> tuple[list[str], list[str]]:
    """The databases and roles named ``name`` on the server."""
    databases, roles = db.list_branches(postgres.dsn, "pr_")
    return [d for d in databases if d == name], [r for r in roles if r == name]


def test_an_unreachable_server_is_a_temporary_error_without_the_dsn() -> None:
    dsn = "postgresql://admin:hunter2@127.0.0.1:1/postgres"
    with pytest.raises(DatabaseError) as e:
        db.create_branch(dsn, "pr_1", "pw")
    assert e.value.temporary
    assert "127.0.0.1:1" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_a_missing_template_fails_before_anything_is_made(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    with pytest.raises(DatabaseError, match="template database 'no_such_seed' does not exist"):
        db.create_branch(postgres.dsn, name, "pw", template="no_such_seed")
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.role_exists(conn, name)


def test_branches_are_listed_by_prefix(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    db.create_branch(postgres.dsn, name, "pw")
    dbs, roles = db.list_branches(postgres.dsn, "pr_")
    assert name in dbs
    assert name in roles


def test_the_dynamic_provider_creates_with_the_given_password_and_deletes(
    postgres: LocalPostgres, names: list[str]
) -> None:
    name = fresh(names)
    provider = PostgresBranchProvider()
    created = provider.create({"admin_dsn": postgres.dsn, "name": name, "password": "Given0Password0From0Random0x"})
    assert created.id == name
    assert created.outs["password"] == "Given0Password0From0Random0x"
    connect_as(postgres, name, "Given0Password0From0Random0x", name).close()
    diff = provider.diff(name, created.outs, {**created.outs, "template": "other"})
    assert diff.replaces == ["template"]
    provider.delete(name, created.outs)
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.database_exists(conn, name)


def test_a_branch_keeps_the_password_it_was_created_with_when_only_the_password_input_changes(
    postgres: LocalPostgres, names: list[str]
) -> None:
    """A stack whose branch an older prenv created (password generated in the provider) gets a RandomPassword on
    its next update: nothing changes, and the app's URL keeps the password the role really has."""
    name = fresh(names)
    provider = PostgresBranchProvider()
    created = provider.create({"admin_dsn": postgres.dsn, "name": name, "password": "OldGeneratedPassword0123456789x"})
    news = {**created.outs, "password": "NewRandomPassword0123456789abcd"}
    assert provider.diff(name, created.outs, news).changes is False
    updated = provider.update(name, created.outs, {**news, "admin_dsn": postgres.dsn})
    assert updated.outs["password"] == "OldGeneratedPassword0123456789x"
    connect_as(postgres, name, "OldGeneratedPassword0123456789x", name).close()
    provider.delete(name, created.outs)


def test_a_create_without_a_password_input_is_refused(postgres: LocalPostgres, names: list[str]) -> None:
    with pytest.raises(Exception, match="needs a password input"):
        PostgresBranchProvider().create({"admin_dsn": postgres.dsn, "name": fresh(names)})


def test_the_provider_survives_serialization_like_pulumi_does_it() -> None:
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider

    restored = dill.loads(base64.b64decode(serialize_provider(PostgresBranchProvider())))
    assert type(restored).__name__ == "PostgresBranchProvider"


def test_a_failed_create_database_leaves_no_role_behind(postgres: LocalPostgres, names: list[str]) -> None:
    name = fresh(names)
    busy = f"busy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(busy)))
    holder = psycopg.connect(postgres.dsn_for(busy))  # a session on the template makes CREATE … TEMPLATE fail
    try:
        with pytest.raises(DatabaseError, match="in use"):
            db.create_branch(postgres.dsn, name, "pw", template=busy)
    finally:
        holder.close()
    with psycopg.connect(postgres.dsn) as conn:
        assert not db.role_exists(conn, name)
        assert not db.database_exists(conn, name)
