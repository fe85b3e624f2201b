"""What both stack gateways share: the project's workspace, selecting a stack, writing a PR's config, logging.

A LocalWorkspace on the project directory runs the same ``__main__.py`` that CI's ``pulumi up -s pr-<n>`` runs, so
the driver and CI deploy the same thing. PR values are written as stack config; the template stays in
Pulumi.preview.yaml and is read by the program. Hazards handled here:

- stack create/select and config writes rewrite workspace state: those calls are serialized by one lock;
- one PulumiCommand is reused (its version check runs once); it runs every pulumi process in a session of its own,
  ended with the operation (prenv.gateway.sessions);
- plugins are pre-installed by ``make tools`` and automatic acquisition is off, so nothing is downloaded.

``PulumiGateway`` implements the StackGateway protocol once (up, destroy-then-remove) over a few steps that differ
by backend: listing, deploying, destroying and clearing a crashed run's leftovers. The two implementations are
prenv.gateway.diy (``file://`` and ``s3://``: reads checkpoints itself) and prenv.gateway.cloud (Pulumi Cloud and
other ``https://`` backends: everything through the Automation API). ``prenv.gateway.gateway_for`` picks one.

Pulumi's output goes to the logger, redacted, never to stdout; failures become StackOperationError subclasses
(prenv.gateway.classify).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pulumi import automation as auto

from prenv import naming
from prenv.errors import StackLocked, StackOperationError
from prenv.gateway import rollout
from prenv.gateway.classify import stack_error
from prenv.gateway.redact import redact
from prenv.gateway.sessions import SessionCommand
from prenv.model import DesiredEnvironment, Drift, PullRequest, StackState

__all__ = ["Deployed", "OutputLog", "PulumiGateway"]

logger = logging.getLogger(__name__)

_CREATED_AT = f"prenv:{naming.CREATED_AT_KEY}"

Deployed = tuple[str | None, str | None, str | None]
"""What an up reports back: the stack's plain ``sha``, ``configHash`` and ``url`` outputs."""


class OutputLog:
    """Pulumi's output lines for one PR, to the logger at DEBUG, redacted."""

    def __init__(self, pr: int) -> None:
        self.log = logging.LoggerAdapter(logger, {"pr": pr})
        self.pr = pr

    def output(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self.log.debug("pr-%s | %s", self.pr, redact(line))


class PulumiGateway(ABC):
    """A stack gateway on the project's Pulumi program; subclasses supply the backend-specific steps.

    Args:
        project_dir: holds Pulumi.yaml, Pulumi.preview.yaml and ``__main__.py``.
        backend_url: the state backend (``file://``, ``s3://``, ``https://``).
        env: the environment of every pulumi process (toolchain, kubeconfig, the admin DSN the program needs).
        pulumi_root: where the pulumi CLI is installed (None: on PATH).
        extra_config: more stack config for a PR, written with its PR values.
        secrets_provider: a cloud KMS URL that new stacks encrypt their secrets with (prenv.gateway.secrets).
        session_dir: where each running pulumi session is recorded, so that a driver started after this one
            crashed can end what it left (prenv.gateway.sessions); None: not recorded (sessions still end with
            their operation).
    """

    def __init__(
        self,
        project_dir: Path,
        backend_url: str,
        env: Mapping[str, str],
        *,
        pulumi_root: Path | None = None,
        extra_config: Callable[[DesiredEnvironment], dict[str, str]] | None = None,
        secrets_provider: str | None = None,
        session_dir: Path | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.secrets_provider = secrets_provider
        self.backend_url = backend_url
        self.env = {**env, "PULUMI_BACKEND_URL": backend_url}
        self.pulumi_root = pulumi_root
        self.extra_config = extra_config
        self._cmd = SessionCommand(root=str(pulumi_root) if pulumi_root else None, record_dir=session_dir)
        self._ws_lock = threading.Lock()

    # -- the steps that differ by backend --------------------------------------------------------------------

    @abstractmethod
    def list_stacks(self) -> list[StackState]:
        """See StackGateway.list_stacks."""

    @abstractmethod
    def _stack_names(self) -> list[str]:
        """The names of every stack of the project (short names, not ``org/project/<stack>``)."""

    @abstractmethod
    def _exists(self, name: str) -> bool | None:
        """Whether the stack exists, when known without a pulumi process; None when unknown."""

    @abstractmethod
    def _recover(self, stack: auto.Stack) -> None:
        """Clear what a crashed run left behind (a stale lock, pending operations), or refuse with StackLocked."""

    @abstractmethod
    def _deploy(self, stack: auto.Stack, log: OutputLog, *, refresh: bool = False) -> Deployed:
        """``pulumi up`` on the selected stack (``refresh``: against the live objects, which heals drift); returns
        its plain outputs."""

    @abstractmethod
    def _remember_drift(self, name: str, drift: Drift | None) -> None:
        """Keep the last drift check of the stack where ``prenv list`` finds it (None: forget it). A record that
        cannot be written is logged; it never hides the check's own result."""

    @abstractmethod
    def _destroy(self, stack: auto.Stack, log: OutputLog) -> None:
        """``pulumi destroy`` on the selected stack."""

    # -- StackGateway ----------------------------------------------------------------------------------------

    def up(self, desired: DesiredEnvironment) -> StackState:
        """See StackGateway.up."""
        pr = desired.pr
        name = self._name_for(pr.number, pr.slug)
        self._repair(name)
        exists = self._exists(name)
        stack = self._select(name, create=True, exists=exists)
        self._write_config(stack, desired, new=exists is False)
        self._recover(stack)
        try:
            sha, config_hash, url = self._deploy(stack, OutputLog(pr.number))
        except auto.ConcurrentUpdateError:
            raise StackLocked(name) from None
        except auto.CommandError as e:
            error = self._up_error(name, pr, e)
            self._remember_failure(name, "update", error)
            raise error from None
        self._remember_failure(name, "update", None)
        return StackState(
            pr=pr.number,
            stack=name,
            sha=sha,
            config_hash=config_hash,
            url=url,
            last_update=datetime.now(UTC),
            result="succeeded",
        )

    def _up_error(self, name: str, pr: PullRequest, e: auto.CommandError) -> StackOperationError:
        """The error of a failed up: when the PR's pods are not ready, why (the container's last log lines, the
        event), which says more than pulumi's rollout timeout; a crash does not heal by retrying the same sha."""
        error = stack_error(name, "up", e)
        why = rollout.diagnose(pr.number, self.env, pr.sha)
        if why is None:
            return error
        logger.info("%s: %s", name, error)
        return StackOperationError(name, f"up failed: pods not ready: {why}", temporary=False)

    def destroy(self, pr: int) -> None:
        """See StackGateway.destroy. A branch environment's stack is found by its number, under its ``br-`` name
        or the ``pr-9xxxxxxxx`` one of a stack made before slugs; should both exist, both are destroyed."""
        names = self._names_of(pr)
        if not names:
            logger.info("PR %s: its stack is already gone", pr)
        for name in names:
            self._destroy_stack(pr, name)

    def _destroy_stack(self, pr: int, name: str) -> None:
        self._repair(name)
        try:
            stack = self._select(name, create=False)
        except auto.StackNotFoundError:
            logger.info("PR %s: stack %s is already gone", pr, name)
            return
        self._recover(stack)
        try:
            self._destroy(stack, OutputLog(pr))
        except auto.ConcurrentUpdateError:
            raise StackLocked(name) from None
        except auto.CommandError as e:
            error = stack_error(name, "destroy", e)
            self._remember_failure(name, "destroy", error)
            raise error from None
        self._remember_drift(name, None)
        # Only now, with every resource gone, may the record of them go too.
        with self._ws_lock:
            try:
                stack.workspace.remove_stack(name)
            except auto.CommandError as e:
                raise stack_error(name, "stack rm", e) from None
        self._remember_failure(name, "destroy", None)

    def check_drift(self, desired: DesiredEnvironment, *, heal: bool = False) -> Drift | None:
        """Compare environment ``desired`` (deployed and unchanged since: same sha and config) with the cluster:
        ``pulumi preview --refresh`` reads every object back and says what an up would do to put it back, without
        writing the refreshed state. With ``heal``, drift found is put back by ``pulumi up --refresh``. None when the
        environment has no stack.

        Raises:
            StackLocked: another operation holds the stack.
            StackOperationError: the preview (temporary) or the healing up failed.
        """
        pr = desired.pr
        names = self._names_of(pr.number)
        if not names:
            return None
        name = names[0]
        self._repair(name)
        try:
            stack = self._select(name, create=False)
        except auto.StackNotFoundError:
            return None
        # The PR's values as the last up wrote them: a fresh process (another replica, a restarted pod) has no
        # Pulumi.<stack>.yaml yet, and without it every object would look changed.
        self._write_config(stack, desired, new=False)
        self._recover(stack)
        log = OutputLog(pr.number)
        try:
            preview = stack.preview(refresh=True, color="never", suppress_progress=True, on_output=log.output)
        except auto.ConcurrentUpdateError:
            raise StackLocked(name) from None
        except auto.CommandError as e:
            raise stack_error(name, "preview --refresh", e, temporary=True) from None
        changes = {str(op.value if hasattr(op, "value") else op): n for op, n in preview.change_summary.items() if n}
        changes.pop("same", None)
        healed = False
        if changes and heal:
            logger.info("%s: drift (%s): healing with up --refresh", name, changes)
            try:
                self._deploy(stack, log, refresh=True)
            except auto.ConcurrentUpdateError:
                raise StackLocked(name) from None
            except auto.CommandError as e:
                raise stack_error(name, "up --refresh", e) from None
            healed = True
        drift = Drift(pr.number, name, changes, datetime.now(UTC), healed)
        if changes:
            logger.warning("%s: drift: %s", name, drift.summary())
        self._remember_drift(name, drift)
        return drift

    def _name_for(self, pr: int, slug: str | None) -> str:
        """The stack to deploy environment ``pr`` to: ``pr-<n>`` for a PR; for a branch environment the stack it
        already has (a stack made before slugs keeps its ``pr-9xxxxxxxx`` name, and with it its numeric
        namespace), else ``br-<slug>-<digits>``. Only a branch number costs a listing."""
        wanted = naming.stack_name(pr, slug)
        if not naming.is_branch_number(pr):
            return wanted
        existing = naming.stacks_of(self._stack_names(), pr)
        if not existing or wanted in existing:
            return wanted
        logger.info("PR %s: deploying to its existing stack %s", pr, existing[0])
        return existing[0]

    def _names_of(self, pr: int) -> list[str]:
        """The stacks of environment ``pr`` to destroy: ``pr-<n>`` for a PR, whatever exists for a branch."""
        if not naming.is_branch_number(pr):
            return [naming.stack_name(pr)]
        return naming.stacks_of(self._stack_names(), pr)

    @abstractmethod
    def _repair(self, name: str) -> None:
        """Make the backend's files of stack ``name`` readable again after a crash, before pulumi reads them."""

    @abstractmethod
    def _remember_failure(self, name: str, kind: str, error: StackOperationError | None) -> None:
        """Keep why the stack's last ``kind`` run failed where ``prenv list`` finds it (None: it succeeded). A record
        that cannot be written is logged; it never hides the operation's own result."""

    def deploy_shared(self) -> dict[str, str]:
        """Deploy the cluster-wide ``shared`` stack (once per cluster); returns its plain outputs."""
        stack = self._select("shared", create=True)
        try:
            result = stack.up(on_output=OutputLog(0).output, color="never", suppress_progress=True)
        except auto.CommandError as e:
            raise stack_error("shared", "up", e) from None
        return {k: str(v.value) for k, v in result.outputs.items() if not v.secret}

    # -- shared helpers --------------------------------------------------------------------------------------

    def _workspace(self) -> auto.LocalWorkspace:
        return auto.LocalWorkspace(
            work_dir=str(self.project_dir),
            env_vars=dict(self.env),
            pulumi_command=self._cmd,
            secrets_provider=self.secrets_provider,
        )

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
                raise stack_error(name, "select", e, temporary=True) from None

    def _write_config(self, stack: auto.Stack, desired: DesiredEnvironment, *, new: bool) -> None:
        """The PR's values as stack config, in one ``pulumi config set-all``; ``createdAt`` only on the first up."""
        pr = desired.pr
        config = {
            "prenv:pr": str(pr.number),
            "prenv:sha": pr.sha,
            "prenv:branch": naming.label_value(pr.branch),
            "prenv:author": naming.label_value(pr.author),
            "prenv:asleep": "true" if pr.asleep else "false",
        }
        # The slug the program names things with is the one in the stack's name (stacks/preview.py), which an old
        # branch stack has none of; written only where there is one, for readers of the stack's config.
        parsed = naming.parse_stack(stack.name)
        if parsed is not None and parsed.slug:
            config["prenv:slug"] = parsed.slug
        if self.extra_config:
            config.update(self.extra_config(desired))
        with self._ws_lock:
            if new or _CREATED_AT not in self._config_keys(stack):
                config[_CREATED_AT] = naming.created_at()
            stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})

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
