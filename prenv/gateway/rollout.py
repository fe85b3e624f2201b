"""Why a PR's pods are not ready, from the Kubernetes API alone: the reason a failed up gives reviewers.

Pulumi's own error for a Deployment that never became available is long and generic ("3 errors occurred …
Minimum number of live Pods was not attained"). When an up fails, the gateway asks the cluster instead: for each
pod of the PR (label ``prenv.dev/pr``) that is not Ready, the container's waiting reason (CrashLoopBackOff,
ErrImageNeverPull, CreateContainerConfigError …), its last termination (exit code and message; the app's
containers use ``terminationMessagePolicy: FallbackToLogsOnError``, so the message is the end of its log), or the
latest Warning event (a failing readiness probe, an unschedulable pod). Logs would need the kubelet's API (through
the API server's proxy, with the RBAC to read ``pods/log``); this needs only pods and events.

The text is the app's own output, so it is redacted like pulumi's (connection URLs, ``password=…``) and bounded.
A cluster that cannot be asked gives no reason rather than an error: the diagnosis only ever adds to a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prenv import naming
from prenv.gateway.redact import redact

__all__ = ["PodProblem", "diagnose", "problems_of", "reason"]

logger = logging.getLogger(__name__)

_MAX_REASON = 600
_LOG_LINES = 3


@dataclass(frozen=True, slots=True)
class PodProblem:
    """One not-ready container (or pod, when no container says why)."""

    pod: str
    container: str
    what: str
    """What is wrong: ``exit code 1``, ``CrashLoopBackOff``, ``Readiness probe failed: …``."""
    detail: str = ""
    """The last lines the container wrote, or the event's message."""

    def __str__(self) -> str:
        text = f"{self.container}: {self.what}"
        return f"{text}: {self.detail}" if self.detail else text


def _last_lines(message: str | None) -> str:
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    return " / ".join(lines[-_LOG_LINES:])


def _container_problem(pod: str, status: Any) -> PodProblem | None:
    if status.ready:
        return None
    state, last = status.state, status.last_state
    terminated = (state and state.terminated) or (last and last.terminated)
    waiting = state.waiting if state else None
    if terminated is not None and terminated.exit_code:
        what = f"exit code {terminated.exit_code}"
        if waiting is not None and waiting.reason:
            what = f"{waiting.reason}, {what}"
        return PodProblem(pod, status.name, what, _last_lines(terminated.message))
    if waiting is not None and waiting.reason and waiting.reason not in ("ContainerCreating", "PodInitializing"):
        return PodProblem(pod, status.name, waiting.reason, _last_lines(waiting.message))
    return None


def problems_of(pods: list[Any], events: list[Any]) -> list[PodProblem]:
    """The problems of ``pods`` (V1Pod), using ``events`` (CoreV1Event of their namespace) where the containers
    themselves do not say why (running but never Ready, or not scheduled)."""
    problems: list[PodProblem] = []
    for pod in pods:
        name = pod.metadata.name
        statuses = (pod.status and pod.status.container_statuses) or []
        found = [p for s in statuses if (p := _container_problem(name, s)) is not None]
        if not found and (not statuses or not all(s.ready for s in statuses)):
            warnings = [
                e
                for e in events
                if e.type == "Warning" and e.involved_object is not None and e.involved_object.name == name
            ]
            if warnings:
                latest = max(warnings, key=lambda e: _event_time(e))
                container = statuses[0].name if len(statuses) == 1 else name
                found.append(PodProblem(name, container, latest.reason or "Warning", _last_lines(latest.message)))
        problems.extend(found)
    return problems


def _event_time(event: Any) -> float:
    for when in (event.last_timestamp, event.event_time, event.first_timestamp):
        if when is not None:
            return float(when.timestamp())
    return 0.0


def reason(problems: list[PodProblem]) -> str | None:
    """One line for a PR comment and ``prenv list``: each distinct problem once, redacted, bounded."""
    distinct = list(dict.fromkeys(str(p) for p in problems))
    if not distinct:
        return None
    return redact("; ".join(distinct))[:_MAX_REASON]


def diagnose(pr: int, env: Mapping[str, str], sha: str | None = None) -> str | None:
    """Why PR ``pr``'s pods are not ready, asked of the cluster the pulumi program deployed to (``KUBECONFIG`` in
    ``env``, else the in-cluster service account); ``None`` when nothing is wrong with them or nobody can tell.
    With ``sha``, only the pods of that commit count when there are any (an older rollout's pods say less)."""
    try:
        from kubernetes import client, config

        if env.get("KUBECONFIG"):
            api = config.new_client_from_config(config_file=env["KUBECONFIG"].split(":")[0])
        elif env.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            api = client.ApiClient()
        else:
            return None
        with api:
            core = client.CoreV1Api(api)
            selector = f"{naming.LABEL_PR}={pr},{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
            pods = core.list_pod_for_all_namespaces(label_selector=selector, _request_timeout=10).items
            current = [p for p in pods if sha and (p.metadata.annotations or {}).get(naming.LABEL_SHA) == sha]
            pods = current or pods
            problems: list[PodProblem] = []
            for namespace in sorted({p.metadata.namespace for p in pods}):
                in_ns = [p for p in pods if p.metadata.namespace == namespace]
                events = core.list_namespaced_event(namespace, _request_timeout=10).items
                problems.extend(problems_of(in_ns, events))
    except Exception as e:  # a diagnosis only adds to a failure; it never replaces it
        logger.info("pr-%s: could not ask the cluster why its pods are not ready: %s", pr, type(e).__name__)
        return None
    return reason(problems)
