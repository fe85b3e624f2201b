"""/metrics: every documented family, with label values from fixed sets."""

from __future__ import annotations

from prenv.service.metrics import ServiceMetrics


def test_metrics_expose_every_documented_family() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from prenv.model import Action, ActionKind, StackState
    from prenv.reconcile import Outcome, SkipReason

    limit = SimpleNamespace(remaining=4321, reset=datetime(2030, 1, 1, tzinfo=UTC))
    m = ServiceMetrics(
        environments=lambda: [
            StackState(1, "pr-1", "a", "h", result="succeeded"),
            StackState(2, "pr-2", "a", "h", result="failed"),
        ],
        busy=lambda: [2],
        queue_depth=lambda: 3,
        rate_limit=lambda: limit,
    )
    m.observe(Outcome(Action(ActionKind.CREATE, 1, "new"), ok=True, seconds=12.0))
    m.observe(Outcome(Action(ActionKind.UPDATE, 2, "x"), ok=False, skipped=SkipReason.BUSY))
    m.delivery("pull_request", "queued")
    text = m.render().decode()
    for line in (
        'prenv_environments{status="ready"} 1.0',
        'prenv_environments{status="updating"} 1.0',
        'prenv_operations_total{kind="create",outcome="ok"} 1.0',
        'prenv_operations_total{kind="update",outcome="skipped"} 1.0',
        'prenv_operation_duration_seconds_count{kind="create"} 1.0',
        "prenv_queue_depth 3.0",
        'prenv_webhook_deliveries_total{event="pull_request",result="queued"} 1.0',
        "prenv_github_rate_limit_remaining 4321.0",
        "prenv_github_rate_limit_reset_timestamp_seconds 1.893456e+09",
    ):
        assert line in text


def test_failed_operations_are_counted_by_kind_and_retry_decision() -> None:
    from prenv.model import Action, ActionKind
    from prenv.reconcile import Outcome

    m = ServiceMetrics()
    destroy = Action(ActionKind.DESTROY, 4, "closed")
    m.observe(Outcome(destroy, ok=False, error="pr-4: destroy failed: refused", temporary=False))
    m.observe(Outcome(destroy, ok=False, error="pr-4: destroy failed: refused", temporary=False))
    m.observe(Outcome(Action(ActionKind.UPDATE, 5, "x"), ok=False, error="pr-5: locked", temporary=True))
    m.observe(Outcome(Action(ActionKind.CREATE, 6, "new"), ok=True, seconds=1.0))
    text = m.render().decode()
    assert 'prenv_operation_failures_total{kind="destroy",retry="permanent"} 2.0' in text
    assert 'prenv_operation_failures_total{kind="update",retry="temporary"} 1.0' in text
    assert 'prenv_operations_total{kind="destroy",outcome="failed"} 2.0' in text
    assert 'kind="create",retry=' not in text
