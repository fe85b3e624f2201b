"""Why a PR's pods are not ready, read from pod statuses and events as the Kubernetes API returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes.client import (
    CoreV1Event,
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1ObjectMeta,
    V1ObjectReference,
    V1Pod,
    V1PodStatus,
)

from prenv.gateway.rollout import problems_of, reason

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def pod(name: str, *statuses: V1ContainerStatus) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name=name, namespace="pr-7"), status=V1PodStatus(container_statuses=list(statuses))
    )


def container(
    name: str, *, ready: bool, state: V1ContainerState, last: V1ContainerState | None = None
) -> V1ContainerStatus:
    return V1ContainerStatus(
        name=name,
        ready=ready,
        state=state,
        last_state=last or V1ContainerState(),
        image="i",
        image_id="",
        restart_count=1,
    )


def event(pod_name: str, reason: str, message: str, kind: str = "Warning", at: datetime = T0) -> CoreV1Event:
    return CoreV1Event(
        metadata=V1ObjectMeta(name=f"{pod_name}.1"),
        involved_object=V1ObjectReference(kind="Pod", name=pod_name),
        reason=reason,
        message=message,
        type=kind,
        last_timestamp=at,
    )


def crashing(log: str) -> V1ContainerStatus:
    return container(
        "web",
        ready=False,
        state=V1ContainerState(waiting=V1ContainerStateWaiting(reason="CrashLoopBackOff", message="back-off 10s")),
        last=V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=1, reason="Error", message=log)),
    )


def test_a_crashing_container_is_reported_with_its_exit_code_and_last_log_lines() -> None:
    log = "starting\nreading config\nconnecting\nlisten tcp: address 99999: invalid port\n"
    problems = problems_of([pod("web-1", crashing(log))], [])
    assert reason(problems) == (
        "web: CrashLoopBackOff, exit code 1: reading config / connecting / listen tcp: address 99999: invalid port"
    )


def test_an_image_that_is_not_on_the_node_is_reported_by_its_waiting_reason() -> None:
    waiting = V1ContainerStateWaiting(reason="ErrImageNeverPull", message='image "prenv.local/app:pr-7" not present')
    problems = problems_of([pod("web-1", container("web", ready=False, state=V1ContainerState(waiting=waiting)))], [])
    assert reason(problems) == 'web: ErrImageNeverPull: image "prenv.local/app:pr-7" not present'


def test_a_running_container_that_never_gets_ready_is_explained_by_its_latest_warning_event() -> None:
    running = container("web", ready=False, state=V1ContainerState(running=V1ContainerStateRunning(started_at=T0)))
    events = [
        event("web-1", "Unhealthy", "Readiness probe failed: Get http://10.245.0.9:8080/healthz: connection refused"),
        event(
            "web-1",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            at=T0 + timedelta(seconds=5),
        ),
        event("web-1", "Pulled", "Container image already present", kind="Normal", at=T0 + timedelta(seconds=9)),
        event("other-1", "Unhealthy", "someone else's pod", at=T0 + timedelta(seconds=9)),
    ]
    assert reason(problems_of([pod("web-1", running)], events)) == (
        "web: Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503"
    )


def test_an_unscheduled_pod_is_explained_by_its_event() -> None:
    events = [event("web-1", "FailedScheduling", "0/1 nodes are available: 1 Insufficient memory.")]
    assert reason(problems_of([pod("web-1")], events)) == (
        "web-1: FailedScheduling: 0/1 nodes are available: 1 Insufficient memory."
    )


def test_ready_pods_and_starting_containers_are_no_problem() -> None:
    ready = container("web", ready=True, state=V1ContainerState(running=V1ContainerStateRunning(started_at=T0)))
    creating = container(
        "worker", ready=False, state=V1ContainerState(waiting=V1ContainerStateWaiting(reason="ContainerCreating"))
    )
    assert problems_of([pod("web-1", ready), pod("worker-1", creating)], []) == []
    assert reason([]) is None


def test_the_reason_is_redacted_bounded_and_says_each_problem_once() -> None:
    log = "connecting to postgresql://app:s3cret@10.245.0.1:5432/pr_7\n" + "x" * 2000
    problems = problems_of([pod("web-1", crashing(log)), pod("web-2", crashing(log))], [])
    text = reason(problems)
    assert text is not None
    assert "s3cret" not in text and "[redacted]" in text
    assert len(text) <= 600
    assert text.count("web: CrashLoopBackOff") == 1
