"""The local PostgreSQL helper: a real server that starts, answers with a password, and stops without a trace."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.localdb import LocalPostgres, find_binaries
from prenv.errors import ToolError
from prenv.procs import process_alive


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="prenv-localdb-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_started_server_accepts_the_admin_dsn_and_stop_leaves_no_process(data_dir: Path) -> None:
    server = LocalPostgres(data_dir)
    server.start()
    try:
        pid = server.pid()
        assert pid is not None and process_alive(pid)
        assert server.is_running()
        with psycopg.connect(server.dsn, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user, inet_server_addr()::text").fetchone() == (
                "postgres",
                "127.0.0.1/32",
            )
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
    finally:
        server.stop()

    assert not server.is_running()
    assert not process_alive(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=2)


def test_tcp_connections_need_the_password(data_dir: Path) -> None:
    server = LocalPostgres(data_dir)
    server.start()
    try:
        wrong = f"postgresql://postgres:not-the-password@127.0.0.1:{server.port}/postgres"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=5)
    finally:
        server.stop()


def test_the_password_file_is_private_and_the_repr_does_not_show_it(data_dir: Path) -> None:
    server = LocalPostgres(data_dir)
    server.start()
    try:
        assert server.password_file.stat().st_mode & 0o077 == 0
        assert server.password not in repr(server)
    finally:
        server.stop()


def test_a_stopped_server_restarts_on_its_data_and_start_is_idempotent(data_dir: Path) -> None:
    server = LocalPostgres(data_dir)
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE kept")
    server.stop()

    again = LocalPostgres(data_dir)
    again.start()
    again.start()
    try:
        with psycopg.connect(again.dsn_for("kept"), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("kept",)
    finally:
        again.stop()
    assert not again.is_running()


def test_missing_binaries_name_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("glob.glob", lambda pattern: [])

    with pytest.raises(ToolError, match="apt-get install -y postgresql"):
        find_binaries()
