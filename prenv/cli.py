"""The ``prenv`` command line: one Typer app; each area mounts its own sub-app here and nowhere else.

Output is for humans (Rich tables and progress on stderr) or, with ``--json``, for machines (JSON on stdout only);
never both. Errors print one line naming the problem and exit non-zero; nothing secret is printed.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from prenv.errors import PrenvError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prenv.driver import Driver
    from prenv.reservations import Reservation

app = typer.Typer(help="Preview environments per pull request, one Pulumi stack each.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()

CONFIG_OPT = typer.Option(None, "--config", "-c", help="prenv.yaml (default: ./prenv.yaml or $PRENV_CONFIG).")
JSON_OPT = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def _mount() -> None:
    """Attach sub-apps. Imported lazily so that `prenv --help` stays fast and areas stay independent."""
    from prenv.cluster.cli import app as cluster_app

    app.add_typer(cluster_app, name="cluster", help="The embedded Kubernetes cluster (etcd, apiserver, KWOK).")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except PrenvError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None


def _driver(config: Path | None, **kw: Any) -> Driver:
    from prenv import driver, settings

    return driver.build(settings.load(config), **kw)


@app.command()
def up(
    pr: int = typer.Option(..., "--pr", help="PR number."),
    sha: str = typer.Option(..., "--sha", help="Head commit sha."),
    branch: str = typer.Option("", help="Head branch (only ever a sanitised label)."),
    author: str = typer.Option("", help="PR author (only ever a sanitised label)."),
    config: Path | None = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Create or update the environment of one PR (CI mode)."""
    from prenv import driver as drv
    from prenv.model import DesiredEnvironment

    with _errors():
        d = _driver(config)
        desired = DesiredEnvironment(pr=drv.pr_from_args(pr, sha, branch, author), config_hash=d.config_hash)
        with err.status(f"pulumi up pr-{pr}…"):
            state = d.gateway.up(desired)
    if as_json:
        print(json.dumps({"pr": state.pr, "stack": state.stack, "url": state.url, "sha": state.sha}))
    else:
        err.print(f"[green]ready[/green] pr-{pr}: {state.url}")


@app.command()
def destroy(pr: int = typer.Option(..., "--pr", help="PR number."), config: Path | None = CONFIG_OPT) -> None:
    """Destroy the environment of one PR, then remove its stack (CI mode)."""
    from prenv import naming

    with _errors():
        naming.check_pr_number(pr, "--pr")
        d = _driver(config)
        with err.status(f"pulumi destroy pr-{pr}…"):
            d.gateway.destroy(pr)
    err.print(f"[green]destroyed[/green] pr-{pr}")


@app.command()
def sync(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    config: Path | None = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """One reconcile pass: open PRs against pr-* stacks; create, update and destroy as needed."""
    with _errors():
        d = _driver(config)
        with err.status("reconciling…"):
            result = d.reconciler.sync(dry_run=dry_run)
    if as_json:
        print(json.dumps(result.plan.as_dict()))
    else:
        table = Table("PR", "action", "reason", "result")
        done = {o.action.pr: o for o in result.outcomes}
        for a in result.plan.actions:
            o = done.get(a.pr)
            res = "" if o is None else ("ok" if o.ok else str(o.skipped or o.error or "failed"))
            table.add_row(str(a.pr), a.kind.value, a.reason, res)
        err.print(table)
        for n in sorted(d.ttl.expired() if d.ttl is not None else ()):
            err.print(f"pr-{n}: its TTL expired (no push for its lifetime); a push or a label change brings it back")
        for w in result.filtered.dropped if result.filtered is not None else ():
            if w.position is not None:
                err.print(f"pr-{w.pr.number}: waiting for a free environment, position {w.position} in the queue")
            elif w.evicted_for is not None:
                err.print(f"pr-{w.pr.number}: evicted to make room for pr-{w.evicted_for}")
        if not result.source_ok:
            err.print("[yellow]PR source unavailable: nothing was destroyed this pass[/yellow]")
    failed = [o for o in result.outcomes if not o.ok and o.skipped is None]
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_(config: Path | None = CONFIG_OPT, as_json: bool = JSON_OPT) -> None:
    """The environments: PR (a branch environment's stack name), URL, sha, status, age, last error."""
    from prenv import naming
    from prenv.reconcile import status_of
    from prenv.reservations import QuotaReader, Reservation, running_seconds

    with _errors():
        d = _driver(config)
        stacks = d.gateway.list_stacks()
        reader = QuotaReader(d.template.namespace_prefix, env=d.gateway.env)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for s in sorted(stacks, key=lambda s: s.pr):
        status = status_of(s)
        age = int((now - s.created_at).total_seconds()) if s.created_at else None
        error = (
            s.error or f"last {'destroy' if s.last_kind == 'destroy' else 'update'} failed"
            if status.value == "failed"
            else None
        )
        rows.append(
            {
                "pr": s.pr,
                "stack": s.stack,
                "url": s.url,
                "sha": s.sha,
                "status": status.value,
                "age_seconds": age,
                "error": error,
                "drift": _drift_of(d.gateway, s.stack),
                "asleep": s.asleep,  # workloads at zero replicas (prenv.sleep); a push or /preview wake wakes it
                # What its pods reserve (one API call: its namespace's ResourceQuota); null when unknown.
                "requests": _as_dict(reader.read(s.stack)),
                "running_seconds": running_seconds(s.created_at, now),
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("PR", "URL", "sha", "status", "age", "reserves", "error")
    for r in rows:
        shown = "" if r["age_seconds"] is None else _human(int(r["age_seconds"]))
        # A branch environment's number says nothing to a reader; its stack name says which branch it is.
        pr = r["stack"] if r["stack"].startswith(naming.BRANCH_STACK_PREFIX) else str(r["pr"])
        req = r["requests"]
        reserves = "unknown" if req is None else Reservation(**req).summary()
        shown_status = f"{r['status']} (asleep)" if r["asleep"] else str(r["status"])
        table.add_row(pr, r["url"] or "", str(r["sha"] or "")[:7], shown_status, shown, reserves, r["error"] or "")
    out.print(table)


@app.command()
def serve(
    config: Path | None = CONFIG_OPT,
    host: str | None = typer.Option(None, "--host", help="Listen address (default: serve.host, 0.0.0.0)."),
    port: int | None = typer.Option(None, "--port", help="Listen port (default: serve.port, 8080)."),
) -> None:
    """Run the service: GitHub webhooks, periodic resync, PR feedback, TTLs, /metrics; drains on SIGTERM."""
    from prenv import settings
    from prenv.service import runner

    with _errors():
        runner.serve(settings.load(config), host=host, port=port)


@app.command()
def unlock(
    pr: int = typer.Option(..., "--pr", help="PR number."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove the lock without asking (for scripts)."),
    config: Path | None = CONFIG_OPT,
) -> None:
    """Show who holds a PR stack's lock (host, pid, user, age) and remove it after confirmation.

    For a lock prenv will not remove by itself: one held by another host, or by a live process. Only remove it when
    you know that run is gone; two updates on one stack corrupt its state.
    """
    from prenv import naming, settings
    from prenv.errors import ConfigError
    from prenv.gateway.backend import DiyBackend, store_for
    from prenv.gateway.locks import age_seconds, owner_of

    with _errors():
        number = naming.check_pr_number(pr, "--pr")
        s = settings.load(config)
        store = store_for(s.state.backend)
        if store is None:
            raise ConfigError("state.backend", "a Pulumi Cloud backend keeps its own locks: use `pulumi cancel`")
        backend = DiyBackend(store, "prenv")
        # A branch environment's stack is br-<slug>-<digits> (or pr-<n> when made before slugs): found by number.
        found = naming.stacks_of(backend.stack_names(), number) if naming.is_branch_number(number) else []
        stack = found[0] if found else naming.stack_name(number)
        locks = backend.locks(stack)
        if not locks:
            err.print(f"{stack} is not locked")
            return
        table = Table("host", "pid", "user", "age", "owner")
        for lock in locks:
            age = age_seconds(lock)
            table.add_row(
                lock.hostname or "?",
                str(lock.pid) if lock.pid is not None else "?",
                lock.username or "?",
                "?" if age is None else _human(max(0, int(age))),
                owner_of(lock),
            )
        err.print(table)
        if not yes and not typer.confirm(f"Remove the lock of {stack}? Only if the run that holds it is gone."):
            err.print("left as it is")
            raise typer.Exit(1)
        for lock in locks:
            backend.remove_lock(lock)
    err.print(f"[green]unlocked[/green] {stack}")


def _drift_of(gateway: Any, stack: str) -> dict[str, Any] | None:
    """The stack's last drift check as the gateway recorded it (DIY backends), or None."""
    record = getattr(gateway, "drift_record", None)
    return record(stack) if callable(record) else None


@app.command()
def drift(
    heal: bool = typer.Option(False, "--heal", help="Put what drifted back (pulumi up --refresh)."),
    pr: int | None = typer.Option(None, "--pr", help="Only this PR's environment."),
    config: Path | None = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Compare every up-to-date environment with the cluster (pulumi preview --refresh): what changed outside prenv.
    Exit status 2 when something drifted and was not healed."""
    with _errors():
        d = _driver(config)
        found = d.reconciler.check_drift(heal=heal, only=pr)
    rows = [
        {"pr": f.pr, "stack": f.stack, "changes": f.changes, "healed": f.healed, "summary": f.summary()} for f in found
    ]
    if as_json:
        print(json.dumps(rows))
    else:
        table = Table("PR", "stack", "drift")
        for f in found:
            table.add_row(str(f.pr), f.stack, f.summary())
        out.print(table)
    if any(f.drifted and not f.healed for f in found):
        raise typer.Exit(2)


def _as_dict(reserved: Reservation | None) -> dict[str, Any] | None:
    return None if reserved is None else dict(reserved.as_dict())


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def main() -> None:
    _mount()
    app()


@app.command()
def gc(
    apply_: bool = typer.Option(False, "--apply", help="Remove what is listed."),
    expired: bool = typer.Option(False, "--expired", help="Environments past their TTL (--apply destroys them)."),
    config: Path | None = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List prenv namespaces, databases and roles without a stack, and stacks without an open PR; with --expired,
    the environments of open PRs past their TTL instead."""
    from prenv import gc as sweep
    from prenv.errors import SourceError

    if expired:
        _gc_expired(apply_, config, as_json)
        return
    with _errors():
        d = _driver(config)
        core = _core_api()
        stacks = frozenset(s.pr for s in d.gateway.list_stacks())
        admin = d.settings.database.admin_dsn.get_secret_value() if d.settings.database.admin_dsn else None
        dbs: list[str] = []
        roles: list[str] = []
        if admin and d.template.database.enabled:
            from prenv import db

            dbs, roles = db.list_branches(admin, d.template.database.name_prefix)  # DatabaseError is a PrenvError
        try:
            open_prs: frozenset[int] | None = frozenset(p.number for p in d.source.list_open())
        except SourceError:
            open_prs = None
        inventory = sweep.Inventory(
            stacks=stacks,
            namespaces=sweep.prenv_namespaces(core),
            databases=tuple(dbs),
            roles=tuple(roles),
            open_prs=open_prs,
        )
        orphans = sweep.find_orphans(inventory, d.template.database.name_prefix)
        done = sweep.apply(orphans, core_api=core, admin_dsn=admin, destroy_stack=d.gateway.destroy) if apply_ else []
    if as_json:
        print(json.dumps({**orphans.as_dict(), "removed": done}))
        return
    if orphans.empty():
        err.print("no orphans")
    for kind, items in orphans.as_dict().items():
        for item in items:
            err.print(f"{kind}: {item}")
    for line in done:
        err.print(f"[green]{line}[/green]")


def _gc_expired(apply_: bool, config: Path | None, as_json: bool) -> None:
    """The environments of open PRs whose TTL ran out (prenv.ttl's rule), destroyed with ``apply_``."""
    from prenv.gc import find_expired

    with _errors():
        d = _driver(config)
        if d.ttl is None:
            raise PrenvError("TTLs are off (serve.ttl.enabled is false, or the source lists branches)")
        gone = find_expired(d.source.list_open(), d.gateway.list_stacks(), datetime.now(UTC), d.ttl.policy)
        removed: list[int] = []
        if apply_:
            for v in gone:
                with err.status(f"pulumi destroy pr-{v.pr}…"):
                    d.gateway.destroy(v.pr)
                removed.append(v.pr)
    rows = [
        {"pr": v.pr, "expired_at": v.expires_at.isoformat() if v.expires_at else None, "reason": v.reason} for v in gone
    ]
    if as_json:
        print(json.dumps({"expired": rows, "removed": removed}))
        return
    if not rows:
        err.print("no expired environments")
    for row in rows:
        done = " [green]destroyed[/green]" if row["pr"] in removed else ""
        err.print(f"pr-{row['pr']}: expired at {row['expired_at']} ({row['reason']}){done}")


def _core_api() -> Any:
    from kubernetes import client, config

    config.load_kube_config()
    return client.CoreV1Api()
