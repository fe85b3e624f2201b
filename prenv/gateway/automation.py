"""The stack gateway over the Pulumi Automation API, on the project's own program.

A LocalWorkspace on the project directory runs the same ``__main__.py`` that CI's ``pulumi up -s pr-<n>`` runs, so
the driver and CI deploy the same thing. PR values are written as stack config; the template stays in
Pulumi.preview.yaml and is read by the program. Known hazards handled here:

- stack create/select rewrites workspace state: those calls are serialized by one lock;
- one PulumiCommand is reused (its version check runs once);
- plugins are pre-installed by ``make tools`` and automatic acquisition is off, so nothing is downloaded;
- a crashed run leaves a lock and pending operations: the lock is removed only when its owner process is gone
  (same host) or it is older than ``stale_lock_seconds``; pending creates are cleared by a refresh.

Pulumi's output and engine events go to the logger, never to stdout. Errors are translated into
StackOperationError subclasses with a short, secret-free summary of pulumi's diagnostics.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from prenv import naming
from prenv.errors import StackLocked, StackOperationError
from prenv.gateway.backend import DiyBackend, FileStore, store_for
from prenv.model import DesiredEnvironment, StackState
from prenv.procs import process_alive

logger = logging.getLogger(__name__)

_ERROR_LINE = re.compile(r"^\s*(error:|.*\berror\b:|([\w.]*(Error|Exception)): )", re.IGNORECASE)
_NOISE = re.compile(r"Traceback \(most recent call last\)|^\s*error: update failed$|^\s*error: preview failed$")
_URN = re.compile(r'"?urn:pulumi:[^"\s]*::([^":\s]+)"?')
# Errors a retry may cure: outages and timeouts, and the database provider's temporary errors, whose flag is lost
# at the pulumi boundary but whose message shapes are fixed (components/pgbranch.py: "cannot connect to PostgreSQL
# at h:p", "PostgreSQL at h:p failed|timed out", a template "in use by other sessions"; its permanent errors say
# "refused").
_TEMPORARY = re.compile(
    r"connection refused|timeout|timed out|unavailable|cannot connect|cluster is unreachable"
    r"|PostgreSQL at \S+ (failed|timed out)|is in use by other sessions",
    re.IGNORECASE,
)
_SECRETISH = re.compile(r"(postgres(ql)?://[^\s'\"]+|password[=:]\s*\S+|token[=:]\s*\S+)", re.IGNORECASE)


class AutomationGateway:
    def __init__(
        self,
        project_dir: Path,
        backend_url: str,
        env: Mapping[str, str],
        *,
        pulumi_root: Path | None = None,
        stale_lock_seconds: float = 900.0,
        s3_client: Any = None,
        extra_config: Callable[[DesiredEnvironment], dict[str, str]] | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.backend_url = backend_url
        self.env = {**env, "PULUMI_BACKEND_URL": backend_url}
        self.stale_lock_seconds = stale_lock_seconds
        self.extra_config = extra_config
        self._cmd = auto.PulumiCommand(root=str(pulumi_root) if pulumi_root else None)
        self._ws_lock = threading.Lock()
        store = store_for(backend_url, s3_client=s3_client)
        if isinstance(store, FileStore):
            store.root.mkdir(parents=True, exist_ok=True)  # pulumi refuses a file:// backend that does not exist
        self.backend = DiyBackend(store, "prenv") if store is not None else None

    # -- reading ---------------------------------------------------------------------------------------------

    def list_stacks(self) -> list[StackState]:
        if self.backend is not None:
            return self.backend.stacks()
        states = []
        ws = self._workspace()
        for summary in ws.list_stacks():
            pr = naming.pr_of_stack(summary.name)
            if pr is None:
                continue
            outputs = ws.stack_outputs(summary.name)
            states.append(
                StackState(
                    pr=pr,
                    stack=summary.name,
                    sha=_out(outputs, "sha"),
                    config_hash=_out(outputs, "configHash"),
                    url=_out(outputs, "url"),
                    result="in-progress" if summary.update_in_progress else "succeeded",
                )
            )
        return states

    # -- operations ------------------------------------------------------------------------------------------

    def up(self, desired: DesiredEnvironment) -> StackState:
        pr = desired.pr
        name = naming.stack_name(pr.number)
        exists = self._exists(name)
        stack = self._select(name, create=True, exists=exists)
        config = {
            "prenv:pr": str(pr.number),
            "prenv:sha": pr.sha,
            "prenv:branch": naming.label_value(pr.branch),
            "prenv:author": naming.label_value(pr.author),
        }
        if self.extra_config:
            config.update(self.extra_config(desired))
        with self._ws_lock:
            if exists is False or "prenv:createdAt" not in self._config_keys(stack):
                config["prenv:createdAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
            stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
        self._recover(stack)
        log = _PrLogger(pr.number)
        try:
            if self.backend is not None:
                self._run(stack, ["up", "--yes", "--skip-preview"], log)
                after = self.backend.state(name, with_result=False)
                sha, chash, url = (after.sha, after.config_hash, after.url) if after else (None, None, None)
            else:
                outputs = stack.up(on_output=log.output, color="never", suppress_progress=True).outputs
                sha, chash, url = _out(outputs, "sha"), _out(outputs, "configHash"), _out(outputs, "url")
        except auto.ConcurrentUpdateError:
            raise StackLocked(name) from None
        except auto.CommandError as e:
            raise StackOperationError(name, f"up failed: {summarize(e)}", temporary=_temporary(e)) from None
        return StackState(
            pr=pr.number,
            stack=name,
            sha=sha,
            config_hash=chash,
            url=url,
            last_update=datetime.now(UTC),
            result="succeeded",
        )

    def destroy(self, pr: int) -> None:
        name = naming.stack_name(pr)
        try:
            stack = self._select(name, create=False)
        except auto.StackNotFoundError:
            logger.info("PR %s: stack %s is already gone", pr, name)
            return
        self._recover(stack)
        log = _PrLogger(pr)
        try:
            if self.backend is not None:
                self._run(stack, ["destroy", "--yes", "--skip-preview"], log)
            else:
                stack.destroy(on_output=log.output, color="never", suppress_progress=True)
        except auto.ConcurrentUpdateError:
            raise StackLocked(name) from None
        except auto.CommandError as e:
            raise StackOperationError(name, f"destroy failed: {summarize(e)}", temporary=True) from None
        # Only now, with every resource gone, may the record of them go too.
        with self._ws_lock:
            try:
                stack.workspace.remove_stack(name)
            except auto.CommandError as e:
                raise StackOperationError(name, f"stack rm failed: {summarize(e)}", temporary=True) from None

    def deploy_shared(self) -> dict[str, str]:
        """Deploy the cluster-wide ``shared`` stack (once per cluster); returns its plain outputs."""
        stack = self._select("shared", create=True)
        try:
            result = stack.up(on_output=_PrLogger(0).output, color="never", suppress_progress=True)
        except auto.CommandError as e:
            raise StackOperationError("shared", f"up failed: {summarize(e)}", temporary=_temporary(e)) from None
        return {k: str(v.value) for k, v in result.outputs.items() if not v.secret}

    # -- helpers ---------------------------------------------------------------------------------------------

    def _workspace(self) -> auto.LocalWorkspace:
        return auto.LocalWorkspace(
            work_dir=str(self.project_dir),
            env_vars=dict(self.env),
            pulumi_command=self._cmd,
        )

    def _run(self, stack: auto.Stack, args: list[str], log: _PrLogger) -> None:
        """``pulumi <args>`` on the stack, as ``Stack.up`` / ``Stack.destroy`` run it, without the processes the
        Automation API starts afterwards to build its result (``stack output`` twice and ``stack history`` after an
        up, ``stack history`` after a destroy): with a DIY backend the gateway reads outputs from the checkpoint."""
        env = {"PULUMI_DEBUG_COMMANDS": "true", **self.env}
        argv = [*args, "--color", "never", "--suppress-progress", "--exec-kind", "auto.local", "--stack", stack.name]
        self._cmd.run(argv, str(self.project_dir), env, on_output=log.output)

    def _exists(self, name: str) -> bool | None:
        """Whether the stack exists, read from a DIY backend without a pulumi process; None when unknown."""
        if self.backend is None:
            return None
        return name in self.backend.stack_names()

    def _config_keys(self, stack: auto.Stack) -> set[str]:
        """The keys of the stack's own config, read from its ``Pulumi.<stack>.yaml`` without a pulumi process
        (the file is where a local workspace keeps it); through ``pulumi config`` when the file cannot be read."""
        for ext in (".yaml", ".yml", ".json"):  # JSON is YAML too
            path = self.project_dir / f"Pulumi.{stack.name}{ext}"
            if not path.exists():
                continue
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                break
            config = doc.get("config") if isinstance(doc, dict) else None
            return set(config) if isinstance(config, dict) else set()
        return set(stack.get_all_config())

    def _select(self, name: str, *, create: bool, exists: bool | None = None) -> auto.Stack:
        """Select the stack, creating it when ``create``. ``exists`` (when known) saves create_or_select's failing
        ``pulumi stack select`` before ``pulumi stack init`` on a new PR: one pulumi process less before its up."""
        with self._ws_lock:
            ws = self._workspace()
            try:
                if create and exists is False:
                    try:
                        return auto.Stack.create(name, ws)
                    except auto.StackAlreadyExistsError:  # created meanwhile by someone else (CI): use it
                        return auto.Stack.select(name, ws)
                if create:
                    return auto.Stack.create_or_select(name, ws)
                return auto.Stack.select(name, ws)
            except auto.StackNotFoundError:
                raise
            except auto.CommandError as e:
                raise StackOperationError(name, f"select failed: {summarize(e)}", temporary=True) from None

    def _recover(self, stack: auto.Stack) -> None:
        """Clear what a crashed run left behind: a stale lock, then pending operations."""
        if self.backend is None:
            return
        name = stack.name
        for lock in self.backend.locks(name):
            if self._is_stale(lock):
                self.backend.remove_lock(lock)
            else:
                raise StackLocked(name, "another operation holds the stack (its owner is alive)")
        if self.backend.pending_operations(name):
            logger.warning("%s: clearing pending operations left by an interrupted run", name)
            try:
                stack.refresh(clear_pending_creates=True, color="never", on_output=_PrLogger(0).output)
            except auto.CommandError as e:
                raise StackOperationError(name, f"refresh failed: {summarize(e)}", temporary=True) from None

    def _is_stale(self, lock: Any) -> bool:
        if lock.timestamp is not None:
            age = (datetime.now(UTC) - lock.timestamp).total_seconds()
            if age > self.stale_lock_seconds:
                return True
        if lock.pid is not None and lock.hostname == socket.gethostname():
            return not process_alive(lock.pid)
        return False


class _PrLogger:
    def __init__(self, pr: int) -> None:
        self.log = logging.LoggerAdapter(logger, {"pr": pr})
        self.pr = pr

    def output(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self.log.debug("pr-%s | %s", self.pr, _SECRETISH.sub("[redacted]", line))


def _out(outputs: Mapping[str, Any], key: str) -> str | None:
    item = outputs.get(key)
    value = getattr(item, "value", None)
    if getattr(item, "secret", False):
        return None
    return str(value) if value is not None else None


def summarize(e: auto.CommandError) -> str:
    """The diagnostic lines of a failed pulumi command, secret-looking text redacted, bounded in size."""
    text = "\n".join(filter(None, [getattr(e, "stderr", ""), getattr(e, "stdout", "")])) or str(e)
    lines = [ln.strip() for ln in text.splitlines() if _ERROR_LINE.match(ln) and not _NOISE.search(ln)]
    if not lines:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-3:]
    out = "; ".join(dict.fromkeys(_URN.sub(r"\1", ln) for ln in lines))
    return _SECRETISH.sub("[redacted]", out)[:1500]


def _temporary(e: auto.CommandError) -> bool:
    # A resource's error (the database provider's "cannot connect", the cluster's "connection refused") is printed
    # in the diagnostics on stdout, not on stderr, which only says that the update failed: look at both, through
    # the diagnostic lines only, so that ordinary progress output cannot make an error look temporary.
    text = f"{getattr(e, 'stderr', '')}\n{summarize(e)}"
    return _TEMPORARY.search(text) is not None
