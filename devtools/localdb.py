"""A throwaway local PostgreSQL server from Debian's binaries, for ``make demo`` and the test suite.

Stateful things are tested against the real thing; this starts it in a directory of our choosing, without a
system service, in about a second:

* password authentication (scram-sha-256) on TCP and on the socket, with a generated superuser password kept in a
  0600 file next to the cluster, so that DSNs in tests look like production ones;
* listening on 127.0.0.1 only, on a free port, with its unix socket in the data directory (never /var/run); with
  ``bridge`` (the embedded cluster's real node), also on the node's bridge address, accepting password logins from
  the pod subnet only, so that pods reach it as they would reach a managed database;
* ``fsync`` off: the data is disposable, and speed matters more than crash safety here.

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` OS user (created by
Debian's postgresql-common; created here as a system user if missing) and the data directory is chowned to it.
That user cannot enter a directory only root may traverse (a checkout under ``/root``, a ``mktemp -d``): then the
server's files live in ``<tmp>/prenv-postgres-<hash of data_dir>`` instead (``home``), and ``data_dir`` holds a
``server-location`` file naming it. ``remove()`` deletes both.

Layout of ``home``: ``cluster/`` (PGDATA), ``superuser.password``, ``postgres.log``, and the socket.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import ipaddress
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from prenv.errors import DatabaseError, ToolError
from prenv.procs import free_port, process_alive

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
OS_USER = "postgres"
_INSTALL_HINT = "install PostgreSQL's server binaries: apt-get install -y postgresql"
_START_TIMEOUT = 60
_CONF_FILE = "prenv.conf"
_HBA_FILE = "prenv_hba.conf"
_LOCATION_FILE = "server-location"


@dataclass(frozen=True)
class Bridge:
    """A network whose hosts may log in (with the password): ``address`` is the host's address on it (the real
    node's bridge gateway), ``network`` the CIDR allowed in ``pg_hba`` (the pod subnet)."""

    address: str
    network: str

    def __post_init__(self) -> None:
        try:
            net = ipaddress.ip_network(self.network)
            address = ipaddress.ip_address(self.address)
        except ValueError as e:
            raise DatabaseError(f"bridge {self.address} / {self.network}: {e}") from None
        if address not in net:
            raise DatabaseError(f"bridge address {self.address} is not in {self.network}")


def find_binaries() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: from PATH, else the newest Debian install.

    Raises:
        ToolError: no PostgreSQL server binaries, with the command that installs them.
    """
    initdb = shutil.which("initdb")
    if initdb is not None:
        directory = Path(initdb).resolve().parent
        if all((directory / name).is_file() for name in ("pg_ctl", "postgres")):
            return directory

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        directory = Path(candidate)
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise ToolError(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; {_INSTALL_HINT}")


class LocalPostgres:
    """One local PostgreSQL server living in ``data_dir``.

    Args:
        data_dir: where the cluster, password file, log and socket live; created if missing. When we run as root
            and the ``postgres`` OS user cannot traverse its parents, they live in ``home`` under the temp dir.
        port: TCP port on 127.0.0.1; a free one is picked at ``start()`` when ``None``.
        bridge: also listen on ``bridge.address`` and accept logins from ``bridge.network`` (pods of the
            embedded cluster's real node). The address must exist when the server starts.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, bridge: Bridge | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = "127.0.0.1"
        self.bridge = bridge
        self.home = self.data_dir if _traversable_by_others(self.data_dir) else _relocated(self.data_dir)
        self._bin: Path | None = None

    def __repr__(self) -> str:  # never shows the password
        return f"LocalPostgres(data_dir={str(self.data_dir)!r}, port={self.port!r})"

    @property
    def pgdata(self) -> Path:
        return self.home / "cluster"

    @property
    def password_file(self) -> Path:
        return self.home / "superuser.password"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").strip()

    @property
    def dsn(self) -> str:
        """The superuser DSN for the ``postgres`` database (contains the password: do not log it)."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str, host: str | None = None) -> str:
        """The superuser DSN for another database on this server (at ``host``, e.g. the bridge address)."""
        if self.port is None:
            raise DatabaseError("the local PostgreSQL server has not been started")
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@{host or self.host}:{self.port}/"
            f"{quote(database, safe='')}"
        )

    def start(self) -> None:
        """Initialise the cluster if needed and start the server; a no-op when it already runs.

        Raises:
            ToolError: binaries missing.
            DatabaseError: initdb or the server failed; the message carries the end of their output.
        """
        self._bin = find_binaries()
        if self.is_running():
            self.port = self._running_port() or self.port
            logger.info("local PostgreSQL already running on port %s", self.port)
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.home != self.data_dir:
            self.home.mkdir(mode=0o700, exist_ok=True)
            (self.data_dir / _LOCATION_FILE).write_text(f"{self.home}\n", encoding="utf-8")
            logger.info("PostgreSQL's OS user cannot enter %s; its files are in %s", self.data_dir, self.home)
        user = self._os_user()
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        if user is not None:
            self._chown(user)
            self._check_reachable(user)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self.port is None:
            self.port = free_port()
        self._write_conf()
        self._pg_ctl("start", "-w", "-t", str(_START_TIMEOUT), "-l", str(self.log_file), what="start the server")
        logger.info("local PostgreSQL started on %s:%s (data in %s)", self.host, self.port, self.home)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait for it to exit; a no-op when it is not running."""
        if not (self.pgdata / "PG_VERSION").exists() or not self.is_running():
            return
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(_START_TIMEOUT), what="stop the server")
        logger.info("local PostgreSQL on port %s stopped", self.port)

    def is_running(self) -> bool:
        """Whether the postmaster recorded in the data directory is alive."""
        pid = self.pid()
        return pid is not None and process_alive(pid)

    def pid(self) -> int | None:
        """The postmaster's process id from ``postmaster.pid``, or ``None`` when there is none."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Stop the server and delete ``data_dir`` (and ``home``, when the files were relocated)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- internals ---------------------------------------------------------------------------------------------

    def _running_port(self) -> int | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def _os_user(self) -> pwd.struct_passwd | None:
        """The OS user the server runs as: ourselves, or ``postgres`` when we are root (created if missing)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(OS_USER)
        except KeyError:
            pass
        logger.info("creating system user %s to run PostgreSQL (it refuses to run as root)", OS_USER)
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                OS_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ToolError(f"cannot create the {OS_USER} system user: {result.stderr.strip()[-300:]}")
        return pwd.getpwnam(OS_USER)

    def _chown(self, user: pwd.struct_passwd) -> None:
        for root, dirs, files in os.walk(self.home):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                os.chown(name, user.pw_uid, user.pw_gid, follow_symlinks=False)
        os.chmod(self.home, 0o700)

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        result = self._run(["/bin/sh", "-c", 'test -w "$0" -a -x "$0"', str(self.home)], user)
        if result.returncode != 0:
            raise DatabaseError(
                f"the {user.pw_name} OS user cannot reach {self.home}; "
                "choose a data directory whose parents it can traverse (e.g. under /tmp)"
            )

    def _run(self, args: list[str], user: pwd.struct_passwd | None) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            cwd=str(self.home),
            env=env,
            timeout=_START_TIMEOUT + 30,
            **kwargs,
        )

    def _initdb(self) -> None:
        if self._bin is None:
            self._bin = find_binaries()
        result = self._run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                f"--pwfile={self.password_file}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            self._os_user(),
        )
        if result.returncode != 0:
            raise DatabaseError(f"initdb failed: {_tail(result)}")
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\ninclude_if_exists = '{_CONF_FILE}'\n")

    def _write_conf(self) -> None:
        # Rewritten at every start: the port may change between runs.
        listen = ["127.0.0.1", *((self.bridge.address,) if self.bridge else ())]
        settings = {
            "listen_addresses": _quote_conf(",".join(listen)),
            "hba_file": _quote_conf(str(self.pgdata / _HBA_FILE)),
            "port": str(self.port),
            "unix_socket_directories": _quote_conf(str(self.home)),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        # Password logins only: over the socket, from this host, and from the bridge's network when there is one.
        hosts = ["127.0.0.1/32", "::1/128", *((self.bridge.network,) if self.bridge else ())]
        hba = ["local all all scram-sha-256", *(f"host all all {h} scram-sha-256" for h in hosts)]
        files = {
            self.pgdata / _CONF_FILE: "".join(f"{k} = {v}\n" for k, v in settings.items()),
            self.pgdata / _HBA_FILE: "\n".join(hba) + "\n",
        }
        user = self._os_user()
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)

    def _pg_ctl(self, *args: str, what: str) -> None:
        if self._bin is None:
            self._bin = find_binaries()
        result = self._run([str(self._bin / "pg_ctl"), "-D", str(self.pgdata), *args], self._os_user())
        if result.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.log_file.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise DatabaseError(f"pg_ctl could not {what}: {_tail(result)}\n{log}".rstrip())
        # pg_ctl -w returns once connections are accepted; stopping waits for the pid file to disappear.
        deadline = time.monotonic() + 5
        while args[0] == "stop" and self.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)


def _traversable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can enter every existing ancestor of ``path`` (only matters as root:
    otherwise the server runs as ourselves)."""
    if os.geteuid() != 0:
        return True
    for parent in path.parents:
        with contextlib.suppress(OSError):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
    return True


def _relocated(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"prenv-postgres-{digest}"


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr or result.stdout or "").strip()[-1500:]


def _quote_conf(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
