"""Shared pieces of the reliability suite: the prenv CLI as a child process, leftovers counting, a TCP proxy that
can "take the API down", and recording figures.

Leftovers are counted for the PRs a test used and only those: the session's cluster and PostgreSQL are shared with
other tests of the same worker, whose namespaces and databases belong to other backends. Leftover processes are
counted the same way: the pulumi, language-host and provider processes this test process (its xdist worker) started
since its test began, found by the environment every process it starts inherits (tests/fixtures/processes.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.conditions import competitors, now
from prenv import db
from prenv.gateway.backend import DiyBackend, FileStore
from prenv.gateway.sessions import is_pulumi_process
from prenv.procs import process_alive, process_start_time
from tests.fixtures.processes import MARKER
from tests.reliability.exposure import COLLECTOR
from testsupport.records import Record, results_dir, write_record

ROOT = Path(__file__).resolve().parents[2]
PRENV = str(ROOT / ".venv" / "bin" / "prenv")
GITHUB_TOKEN = "ghp_reliabilityTokenNeverShown0123456789"  # a fake GitHub's token, registered as a secret
# A real passphrase (not the labelled development default) so that the scan can tell if it ever leaks.
PASSPHRASE = "reliability-passphrase-" + os.urandom(12).hex()


def part() -> str:
    """This process's part of a record: the xdist worker id, ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_id() -> str:
    """Shared by every worker of one pytest run (xdist's test-run uid), so their parts are summed together."""
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or _SESSION_RUN


_SESSION_RUN = f"{os.getpid()}-{int(time.time())}"


def record(
    check: str,
    title: str,
    *,
    trials: int,
    failures: int,
    orphans: int | None,
    processes: int | None,
    order: int,
    unit: str,
    pending: int | None = None,
    orphans_note: str = "",
    pending_note: str = "",
    processes_note: str = "",
    of_test: bool = True,
    **details: Any,
) -> Record:
    """Write the check's record, after the check has evaluated everything it asserts (``failures`` counts all of
    it). ``orphans``, ``pending`` (operations left in checkpoints after recovery) and ``processes`` (pulumi processes
    left running, :func:`leftover_processes`) are None when not measured, with a note saying why, so that the table
    shows "n/a" rather than a 0 nobody measured. ``of_test=False``: a session's record (the secrets scan), which
    follows no single test's outcome even when it is written during the last test's teardown."""
    for name, value, note in (
        ("orphans", orphans, orphans_note),
        ("pending", pending, pending_note),
        ("processes", processes, processes_note),
    ):
        if value is None and not note:
            raise ValueError(f"{check}: say why {name} are not measured ({name}_note)")
    if _CURRENT_TEST and of_test:
        details = {**details, "test": _CURRENT_TEST[0]}
    measured = conditions()
    rec = Record(
        check=check,
        title=title,
        trials=trials,
        failures=failures,
        orphans=orphans,
        order=order,
        unit=unit,
        details=details,
        run=run_id(),
        part=part(),
        orphans_note=orphans_note,
        pending=pending,
        pending_note=pending_note,
        processes=processes,
        processes_note=processes_note,
        conditions=measured,
    )
    write_record(rec)
    if of_test:
        _WRITTEN.append(rec)
    return rec


# --- records follow their test's outcome ---------------------------------------------------------------------------
# A record is written where the check has its figures, which may be before the test's last assertions. So that a
# table row never says more than the test proved: when a test starts, the records it wrote last time (found by the
# ``test`` detail) are replaced by "did not finish" ones, and when it fails or errors, what it wrote is rewritten
# as failed. A crashed check thus never keeps an old green record.

_CURRENT_TEST: list[str] = []
_WRITTEN: list[Record] = []


def begin_test(nodeid: str, directory: Path | None = None) -> list[Record]:
    """Mark ``nodeid``'s previous records (this worker's part) as not finished; returns the placeholders."""
    _CURRENT_TEST[:] = [nodeid]
    _WRITTEN.clear()
    _BEFORE.clear()
    _BEFORE.update(pulumi_processes())
    _START[:] = [(now(), os.getloadavg()[0], other_runs())]
    placeholders = []
    directory = directory or results_dir()
    for path in sorted(directory.glob(f"*.{part()}.json")) if directory.exists() else []:
        try:
            old = Record(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if old.details.get("test") != nodeid:
            continue
        placeholder = replace(
            old,
            trials=0,
            failures=1,
            orphans=None,
            orphans_note="the check did not finish",
            pending=None,
            pending_note="the check did not finish",
            processes=None,
            processes_note="the check did not finish",
            details={"test": nodeid, "status": "did not finish"},
            run=run_id(),
            finished_at="",
            command="",
        )
        write_record(placeholder, directory)
        placeholders.append(placeholder)
    return placeholders


def end_test(failed: bool, outcome: str = "", directory: Path | None = None) -> list[Record]:
    """After the test: if it ``failed``, rewrite what it recorded as failed (at least one failure); returns those."""
    written, _WRITTEN[:] = list(_WRITTEN), []
    _CURRENT_TEST.clear()
    if not failed:
        return []
    out = []
    for rec in written:
        failed_rec = replace(
            rec,
            failures=max(rec.failures, 1),
            details={**rec.details, "status": f"test failed after recording ({outcome})".strip()},
            finished_at="",
            command="",
        )
        write_record(failed_rec, directory)
        out.append(failed_rec)
    return out


# --- conditions ----------------------------------------------------------------------------------------------------

_START: list[tuple[str, float, tuple[str, ...]]] = []
"""When the current test began, the 1-minute load average then, and the other runs' processes then."""


def other_runs() -> tuple[str, ...]:
    """Processes competing for the cores (pulumi, pytest, cluster components: bench.conditions.competitors) that do
    not belong to this pytest session: another engineer's test run, a benchmark, a leaked engine. This session's
    own (the other xdist worker and everything it started) carry its PRENV_TEST_SESSION value and are left out."""
    session = os.environ.get(MARKER)
    needle = f"{MARKER}={session}".encode()
    out = []
    for item in competitors():
        pid = int(item.split()[0])
        if session and needle in _environ(pid):
            continue
        out.append(item)
    return tuple(out)


def conditions() -> dict[str, Any]:
    """What the machine was doing while the current test ran: its start, the 1-minute load average at its start and
    now (this run's own work included), and the other runs' processes seen then and now. Any other run's process
    makes the record "under load"; the load average alone does not, since this run's two workers fill 2 CPUs."""
    started, load_before, before = _START[0] if _START else ("", 0.0, ())
    after = other_runs()
    load_after = os.getloadavg()[0]
    others = sorted(set(before) | set(after))
    names = sorted({item.split(" ", 1)[1] for item in others})
    return {
        "started": started,
        "load1_before": round(load_before, 2),
        "load1_after": round(load_after, 2),
        "load1_max": round(max(load_before, load_after), 2),
        "cpus": os.cpu_count() or 1,
        "xdist_workers": int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")),
        "other_processes": len(others),
        "other_process_kinds": names[:10],
        "under_load": bool(others),
    }


# --- leftover processes -------------------------------------------------------------------------------------------

_BEFORE: set[tuple[int, float]] = set()
"""This worker's pulumi processes already running when the current test began (a predecessor's; counted there)."""


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def pulumi_processes() -> set[tuple[int, float]]:
    """(pid, start time) of the live pulumi engines, language hosts and provider plugins (dynamic-provider shims and
    their ``python -m pulumi.dynamic`` included) that this test process started: they carry this pytest session's
    ``PRENV_TEST_SESSION`` value and, under xdist, this worker's id, whoever their parent is now. Empty when the
    session marker is not set (the session-end check is not loaded)."""
    session = os.environ.get(MARKER)
    if not session:
        return set()
    needles = [f"{MARKER}={session}".encode()]
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        needles.append(f"PYTEST_XDIST_WORKER={worker}".encode())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        environ = _environ(pid)
        if not all(n in environ for n in needles) or not is_pulumi_process(pid):
            continue
        started = process_start_time(pid)
        if started is not None and process_alive(pid):  # zombies hold nothing and do not count
            found.add((pid, started))
    return found


def leftover_processes(*, settle: float = 10.0, baseline: set[tuple[int, float]] | None = None) -> list[int]:
    """Pids of the pulumi processes this test started that still run, once ``settle`` seconds have passed without
    them all going away (an operation's session is ended with SIGTERM, then SIGKILL after a grace period). Call it
    where no operation of the test should be running. ``baseline`` (default: those running when the test began)
    are left out; ``set()`` counts every pulumi process of this test process."""
    before = _BEFORE if baseline is None else baseline
    deadline = time.monotonic() + settle
    while True:
        left = pulumi_processes() - before
        if not left or time.monotonic() > deadline:
            return sorted(pid for pid, _ in left)
        time.sleep(0.2)


# --- the CLI ----------------------------------------------------------------------------------------------------


class Prenv:
    """``.venv/bin/prenv`` on one prenv.yaml; everything it prints is exposed to the secrets scan."""

    def __init__(self, root: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "prenv.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.env = env

    def args(self, *args: str) -> list[str]:
        return [PRENV, *args, "-c", str(self.config)]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.args(*args), env=self.env, capture_output=True, text=True, timeout=timeout)
        COLLECTOR.expose(f"prenv {' '.join(args)} stdout", done.stdout)
        COLLECTOR.expose(f"prenv {' '.join(args)} stderr", done.stderr)
        return done

    def start(self, *args: str, verbose: bool = False) -> Child:
        """Start the CLI in its own process group (prenv and every pulumi process under it)."""
        argv = self.args(*args)
        if verbose:
            argv.insert(1, "-v")
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return Child(proc, " ".join(args))


@dataclass
class Child:
    proc: subprocess.Popen[str]
    what: str
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            with self._cond:
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Block until an output line contains ``text``; False when the output ended or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def kill_group(self) -> bool:
        """SIGKILL the whole process group; True when it was still running (the kill landed mid-operation)."""
        import signal

        alive = self.proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        COLLECTOR.expose(f"prenv {self.what} (killed) output", "".join(self.lines))
        return alive

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        COLLECTOR.expose(f"prenv {self.what} output", "".join(self.lines))
        return code


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command name: state, ppid, pgrp, ...
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int, *, settle: float = 5.0) -> bool:
    """Whether a process of the group still runs after ``settle`` seconds (a killed group must leave none)."""
    deadline = time.monotonic() + settle
    while group_members(pgid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)
    return False


# --- leftovers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leftovers:
    """What exists for PRs that should have nothing, what is missing for PRs that should be complete, and locks."""

    namespaces: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    half_branches: tuple[str, ...] = ()  # a role without its database or the reverse
    missing: tuple[str, ...] = ()  # pieces of an environment that should exist

    def orphans(self) -> int:
        return len(self.namespaces) + len(self.databases) + len(self.roles) + len(self.stacks) + len(self.locks)

    def counts(self) -> dict[str, int]:
        return {
            "namespaces": len(self.namespaces),
            "databases": len(self.databases),
            "roles": len(self.roles),
            "stacks": len(self.stacks),
            "stale_locks": len(self.locks),
            "pending_operations": len(self.pending),
            "half_branches": len(self.half_branches),
            "missing": len(self.missing),
        }


def backend_of(backend_url: str) -> DiyBackend:
    return DiyBackend(FileStore(Path(backend_url.removeprefix("file://"))), "prenv")


def live_namespaces(core: client.CoreV1Api, names: Iterable[str], *, settle: float = 60.0) -> set[str]:
    """Of ``names``, the namespaces that exist; a Terminating one is waited for (up to ``settle`` seconds)."""
    wanted = set(names)
    deadline = time.monotonic() + settle
    while True:
        found: dict[str, str] = {}
        for ns in core.list_namespace().items:
            if ns.metadata.name in wanted:
                found[ns.metadata.name] = ns.status.phase
        terminating = [n for n, phase in found.items() if phase == "Terminating"]
        if not terminating or time.monotonic() > deadline:
            return set(found)
        time.sleep(0.5)


def leftovers(
    *,
    used: Iterable[int],
    wanted: Iterable[int],
    core: client.CoreV1Api,
    admin_dsn: str,
    backend: DiyBackend,
    db_prefix: str = "pr_",
) -> Leftovers:
    """Count what is left for the ``used`` PRs: everything of a PR not in ``wanted`` is an orphan, and every piece of a
    ``wanted`` PR must be there. Any lock or pending operation on any stack of the backend is left over too."""
    used, wanted = set(used), set(wanted)
    gone = used - wanted
    namespaces = live_namespaces(core, [f"pr-{n}" for n in used], settle=60.0 if gone else 0.0)
    dbs, roles = db.list_branches(admin_dsn, db_prefix)
    stacks = {s.pr for s in backend.stacks()}
    locks = [lock.key for name in backend.stack_names() for lock in backend.locks(name)]
    pending = [name for name in backend.stack_names() if backend.pending_operations(name)]
    half = [f"{db_prefix}{n}" for n in used if (f"{db_prefix}{n}" in dbs) != (f"{db_prefix}{n}" in roles)]
    missing = []
    for n in sorted(wanted):
        for what, ok in (
            (f"namespace pr-{n}", f"pr-{n}" in namespaces),
            (f"database {db_prefix}{n}", f"{db_prefix}{n}" in dbs),
            (f"role {db_prefix}{n}", f"{db_prefix}{n}" in roles),
            (f"stack pr-{n}", n in stacks),
        ):
            if not ok:
                missing.append(what)
    return Leftovers(
        namespaces=tuple(sorted(f"pr-{n}" for n in gone if f"pr-{n}" in namespaces)),
        databases=tuple(sorted(f"{db_prefix}{n}" for n in gone if f"{db_prefix}{n}" in dbs)),
        roles=tuple(sorted(f"{db_prefix}{n}" for n in gone if f"{db_prefix}{n}" in roles)),
        stacks=tuple(sorted(f"pr-{n}" for n in gone if n in stacks)),
        locks=tuple(locks),
        pending=tuple(pending),
        half_branches=tuple(half),
        missing=tuple(missing),
    )


def branch_exists(admin_dsn: str, name: str) -> tuple[bool, bool]:
    """(database exists, role exists)."""
    with psycopg.connect(admin_dsn, connect_timeout=5) as conn:
        return db.database_exists(conn, name), db.role_exists(conn, name)


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        ns = core.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return bool(ns.status.phase != "Terminating")


# --- an API that can go away ---------------------------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP forwarder: ``close()`` makes the upstream unreachable (connection refused, open connections
    reset), ``open()`` brings it back on the same port. Bytes pass through untouched, so TLS still verifies."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.accepted = 0
        self.refused_while_closed = 0

    def open(self) -> TcpProxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True, name="tcp-proxy")
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            self.accepted += 1
            with self._lock:
                self._conns |= {downstream, upstream}
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            a.setblocking(False)
            b.setblocking(False)
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.setblocking(True)
                    dst.sendall(data)
                    dst.setblocking(False)
        except OSError:
            return
        finally:
            sel.close()
            with self._lock:
                self._conns -= {a, b}
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
