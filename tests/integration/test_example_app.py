"""The example app (examples/app): its Go tests, and the built binary against a real PostgreSQL database.

The database is reached through a TCP forwarder the test can cut and restore, which is how "the database is
unreachable" looks to the app (a network partition), without stopping the worker's shared PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devtools.images import EXAMPLE_APP_DIR, build_example_binary
from prenv import procs
from prenv.toolchain.goenv import go_env

pytestmark = pytest.mark.integration

SHA = "0123456789abcdef0123456789abcdef01234567"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not on PATH; install Go 1.26 (https://go.dev/dl/) as for `make tools`", pytrace=False)
    return go


def test_the_go_tests_of_the_example_app_pass() -> None:
    proc = subprocess.run(
        [_go(), "test", "-count=1", "./..."],
        cwd=EXAMPLE_APP_DIR,
        env=go_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


class Forwarder:
    """127.0.0.1:<port> -> 127.0.0.1:<target>, one thread pair per connection; ``cut`` closes the listener and every
    open connection, ``restore`` listens again on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = procs.free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        self._spawn(self._accept, listener)

    def cut(self) -> None:
        with self._lock:
            doomed = [*self._conns, *([self._listener] if self._listener else [])]
            self._conns.clear()
            self._listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [t for t in self._threads if t.is_alive()]
        assert self._threads == []

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._conns += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def seeded_database(postgres_database: str) -> str:
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric)")
        conn.execute(
            "INSERT INTO products (name, price) VALUES ('teapot', 25.50), ('kettle', NULL),"
            " ('<script>alert(1)</script>', 1)"
        )
    return postgres_database


@pytest.fixture(scope="module")
def app_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _go()
    return build_example_binary(tmp_path_factory.mktemp("bin") / "example-app")


@pytest.fixture
def forwarder(seeded_database: str) -> Iterator[Forwarder]:
    target = urlsplit(seeded_database).port
    assert target is not None
    fwd = Forwarder(target)
    fwd.restore()
    try:
        yield fwd
    finally:
        fwd.cut()


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0]}:{port}"))


@pytest.fixture
def app(app_binary: Path, seeded_database: str, forwarder: Forwarder, tmp_path: Path) -> Iterator[str]:
    port = procs.free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": _through(seeded_database, forwarder.port),
        "PRENV_PR": "101",
        "PRENV_SHA": SHA,
        "PUBLIC_URL": "https://web-101.preview.localtest.me",
    }
    with (tmp_path / "app.log").open("wb") as log:
        proc = subprocess.Popen([str(app_binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        procs.wait_until("the example app's port", lambda: port in procs.listening_ports([port]), timeout=15)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0, (tmp_path / "app.log").read_text()
        assert secret_free((tmp_path / "app.log").read_text(), seeded_database)


def secret_free(log: str, dsn: str) -> bool:
    password = urlsplit(dsn).password
    return bool(password) and password not in log


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (a local http URL)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_page_shows_the_pr_the_sha_and_the_rows_of_its_database(app: str) -> None:
    status, page = _get(f"{app}/")

    assert status == 200
    assert "Preview of PR 101" in page
    assert f'<code id="sha">{SHA}</code>' in page
    assert "<td>teapot</td><td>25.50</td>" in page
    assert "<td>kettle</td><td><i>NULL</i></td>" in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "<script>" not in page
    assert "3 row(s)" in page


def test_healthz_fails_while_the_database_is_unreachable_and_recovers(app: str, forwarder: Forwarder) -> None:
    assert _get(f"{app}/healthz") == (200, "ok\n")

    forwarder.cut()
    procs.wait_until("/healthz to fail", lambda: _get(f"{app}/healthz")[0] == 503, timeout=15)
    status, page = _get(f"{app}/")
    assert status == 503
    assert "Database unavailable" in page

    forwarder.restore()
    procs.wait_until("/healthz to recover", lambda: _get(f"{app}/healthz")[0] == 200, timeout=15)
    assert "teapot" in _get(f"{app}/")[1]


def test_a_missing_table_is_reported_on_the_page(app_binary: Path, postgres_database: str) -> None:
    port = procs.free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": postgres_database, "PRENV_PR": "7"}
    proc = subprocess.Popen([str(app_binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs.wait_until("the example app's port", lambda: port in procs.listening_ports([port]), timeout=15)
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 503
        assert "relation &#34;products&#34; does not exist" in page
        # The server answers, so the database is reachable: healthz is about reachability, not the schema.
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
