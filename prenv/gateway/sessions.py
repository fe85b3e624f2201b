"""Every pulumi process the gateway starts runs in a session of its own, and nothing of it outlives the operation.

``pulumi up`` starts a language host, which runs the program, and a process per provider plugin (Kubernetes, random,
our dynamic provider: a ``/bin/sh`` shim with a ``python -m pulumi.dynamic`` child). The engine starts each plugin in
a process group of its own, and a plugin whose engine dies is reparented to init and may run on for ever: after a
killed driver, a killed engine or a shim that loses its Python child, such processes used to pile up (issue 21).

What they all keep is the *session* the engine was started in: ``setsid`` is the one thing a plugin does not undo.
So :class:`SessionCommand` (the Automation API's PulumiCommand, with the same arguments and output handling) starts
each pulumi process with ``start_new_session=True`` and, when the command ends, returns, raises or is abandoned,
ends whatever is left of that session: SIGTERM to every member, SIGKILL to those still there after a grace period.

A driver that crashes cannot end its sessions. With a record directory, each running session is written down
(``<sid>.json``: the session, the driver's pid and start time, the engine's start time) and removed once ended;
:func:`end_orphaned_sessions`, called at driver start-up (prenv.driver) and so by ``prenv gc``, ends the sessions of
drivers that are gone. A session is only ended when its recording driver is dead (a live driver on the same state
dir keeps its operations) and its members are pulumi processes that started no earlier than the record: the kernel
never gives a new process the pid of a session that still has members, and the start time rules out a session id
reused after the recorded session ended.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

from pulumi.automation._cmd import CommandResult, OnOutput, PulumiCommand, _fixup_path
from pulumi.automation.errors import create_command_error

from prenv.procs import process_alive, process_start_time, session_members

__all__ = ["SessionCommand", "end_orphaned_sessions", "end_session", "is_pulumi_process"]

logger = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
"""How long the members of an ended session get between SIGTERM and SIGKILL."""
_START_SLACK = 2.0
"""Clock-tick rounding between a record's times and /proc's start times."""

_COMMANDS: weakref.WeakSet[SessionCommand] = weakref.WeakSet()


def is_pulumi_process(pid: int) -> bool:
    """Whether ``pid`` runs pulumi or one of its plugins: its command line names pulumi (``pulumi``,
    ``pulumi-language-python``, ``pulumi-resource-*``, ``python -m pulumi.dynamic``, the language host's exec
    script). Our own program runs under the language host and so carries its exec script's name too."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pulumi" in cmdline


def end_session(sid: int, *, grace: float = GRACE_SECONDS, only_started_after: float | None = None) -> list[int]:
    """End every process of session ``sid``: SIGTERM, then SIGKILL after ``grace`` seconds. Returns the pids found.

    Args:
        sid: the session (the pid of the process started with ``start_new_session=True``).
        grace: seconds between SIGTERM and SIGKILL.
        only_started_after: leave alone members that started before this time (seconds since the epoch).
    """

    def members() -> list[int]:
        found = session_members(sid)
        if only_started_after is None:
            return found
        return [p for p in found if (process_start_time(p) or 0.0) >= only_started_after - _START_SLACK]

    found = members()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = members()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = members()
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return found


class SessionCommand(PulumiCommand):
    """A PulumiCommand whose every run is a session of its own, ended with the run (see the module docstring).

    Args:
        root: where the pulumi CLI is installed (None: on PATH).
        record_dir: where running sessions are written down for :func:`end_orphaned_sessions` (None: nowhere).
        grace: seconds between SIGTERM and SIGKILL when a session is ended.
    """

    def __init__(self, root: str | None = None, *, record_dir: Path | None = None, grace: float = GRACE_SECONDS):
        super().__init__(root=root)
        self.record_dir = record_dir
        self.grace = grace
        self._running: dict[int, subprocess.Popen[str]] = {}
        self._guard = threading.Lock()
        self._unrecorded = False
        _COMMANDS.add(self)

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: OnOutput | None = None,
        on_error: OnOutput | None = None,
    ) -> CommandResult:
        """As PulumiCommand.run, in a session of its own that is ended when this returns or raises."""
        sep = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:sep]:
            args.insert(0, "--non-interactive")
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        if os.path.isabs(self.command):
            env = _fixup_path(env, os.path.dirname(self.command))
        stdout: list[str] = []
        stderr: list[str] = []
        with self._session([self.command, *args], cwd, env) as proc:
            readers = [
                threading.Thread(target=_consume, args=(proc.stdout, on_output, stdout), daemon=True),
                threading.Thread(target=_consume, args=(proc.stderr, on_error, stderr), daemon=True),
            ]
            for t in readers:
                t.start()
            # Wait for the engine to exit but leave it unreaped until its session is ended: while it is a zombie its
            # pid, which is the session's id, cannot be given to another process.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        # The session is ended: a plugin that held our pipes open is gone, so the readers see the end of them.
        for t in readers:
            t.join(timeout=self.grace)
        result = CommandResult(stdout="\n".join(stdout), stderr="\n".join(stderr), code=proc.returncode)
        if result.code != 0:
            raise create_command_error(result)
        return result

    @contextlib.contextmanager
    def _session(self, argv: list[str], cwd: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            encoding="utf-8",
            start_new_session=True,
        )
        sid = proc.pid
        with self._guard:
            self._running[sid] = proc
        record = self._record(sid)
        try:
            yield proc
        finally:
            self._end(sid, proc)
            if record is not None:
                record.unlink(missing_ok=True)

    def _end(self, sid: int, proc: subprocess.Popen[str]) -> None:
        left = end_session(sid, grace=self.grace)
        proc.wait()  # reaps the engine (SIGKILLed by end_session if it was still running)
        others = [p for p in left if p != sid]
        if others:
            logger.debug("pulumi session %s: ended %d leftover process(es)", sid, len(others))
        with self._guard:
            self._running.pop(sid, None)

    def _record(self, sid: int) -> Path | None:
        if self.record_dir is None:
            return None
        path = self.record_dir / f"{sid}.json"
        doc = {
            "sid": sid,
            "driver_pid": os.getpid(),
            "driver_started": process_start_time(os.getpid()),
            "started": process_start_time(sid) or time.time(),
        }
        try:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc), encoding="utf-8")
        except OSError as e:
            # Once: a read-only state dir (an installed package, a container) fails every operation alike.
            log = logger.debug if self._unrecorded else logger.warning
            log("cannot record pulumi sessions in %s (%s): a crash would leave them", self.record_dir, type(e).__name__)
            self._unrecorded = True
            return None
        return path

    def end_all(self) -> None:
        """End every session still running (at interpreter exit: an abandoned operation leaves nothing behind)."""
        with self._guard:
            running = list(self._running.items())
        for sid, proc in running:
            self._end(sid, proc)


@atexit.register
def _end_every_session() -> None:
    """At interpreter exit, an operation still running in a thread is abandoned: end its session."""
    for command in list(_COMMANDS):
        command.end_all()


def _consume(stream: object, callback: OnOutput | None, chunks: list[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        stripped = line.rstrip()
        if callback:
            callback(stripped)
        chunks.append(stripped)
    stream.close()  # type: ignore[attr-defined]


def end_orphaned_sessions(record_dir: Path, *, grace: float = GRACE_SECONDS) -> list[int]:
    """End the pulumi sessions recorded in ``record_dir`` by drivers that are gone; returns the sessions ended.

    A record whose driver is alive is left alone (another driver on the same state dir); a record whose session
    has no pulumi process left is removed.
    """
    ended = []
    try:
        records = sorted(record_dir.glob("*.json"))
    except OSError:
        return []
    for path in records:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            sid, driver, driver_started, started = (
                int(doc["sid"]),
                int(doc["driver_pid"]),
                doc.get("driver_started"),
                float(doc["started"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable pulumi session record %s", path.name)
            continue
        if _alive(driver, driver_started):
            continue
        members = [p for p in session_members(sid) if (process_start_time(p) or 0.0) >= started - _START_SLACK]
        if any(is_pulumi_process(p) for p in members):
            found = end_session(sid, grace=grace, only_started_after=started)
            logger.warning("ended pulumi session %s of a driver that is gone (%d processes)", sid, len(found))
            ended.append(sid)
        path.unlink(missing_ok=True)
    return ended


def _alive(pid: int, started: float | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs (not a later one with its pid)."""
    if not process_alive(pid):
        return False
    now = process_start_time(pid)
    return started is None or now is None or abs(now - float(started)) <= _START_SLACK
