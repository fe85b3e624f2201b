"""What an environment reserves: Kubernetes quantities parsed as the API server states them, the quota's
``status.used`` turned into cores and bytes, the line in the PR comment, the gauges, and "unknown" when the cluster
cannot be asked.

The service tests use FakeGateway (stacks in memory) and FakeSource (PRs in memory) with a reader given by the test;
tests/e2e/test_cost.py reads a real namespace's quota after a real up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kubernetes import client

from prenv.model import PullRequest
from prenv.reservations import QuotaReader, Reservation, human_duration, parse_quantity, reservation_of
from prenv.service.feedback import Phase, Report, render_comment
from prenv.sources.fake import FakeSource
from testsupport.service_harness import make_service, pull

MI = 1 << 20


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        ("2.5", Decimal("2.5")),
        ("100m", Decimal("0.1")),
        ("128Mi", Decimal(128 * MI)),
        ("1Gi", Decimal(1 << 30)),
        ("1e3", Decimal(1000)),
        ("1.5k", Decimal(1500)),
        ("64M", Decimal(64_000_000)),
        ("0", Decimal(0)),
    ],
    ids=lambda v: str(v),
)
def test_a_kubernetes_quantity_is_parsed_to_its_exact_value(quantity: str, value: Decimal) -> None:
    assert parse_quantity(quantity) == value


@pytest.mark.parametrize("bad", ["", "1.2.3", "12Qi", "lots", None, True], ids=repr)
def test_what_is_not_a_quantity_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_a_quotas_used_requests_become_cores_and_bytes_and_an_absent_resource_is_zero() -> None:
    used = {"requests.cpu": "150m", "requests.memory": "96Mi", "limits.cpu": "750m", "pods": "3"}
    assert reservation_of(used) == Reservation(cpu_cores=0.15, memory_bytes=96 * MI)
    assert reservation_of({}) == Reservation(cpu_cores=0.0, memory_bytes=0)


def test_a_reservation_reads_as_cpu_and_memory() -> None:
    assert Reservation(0.1, 64 * MI).summary() == "0.1 CPU, 64 MiB memory"
    assert Reservation(2.0, 3 * (1 << 30) // 2).summary() == "2 CPU, 1.5 GiB memory"
    assert Reservation(0.0, 0).summary() == "0 CPU, 0 B memory"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(40, "40s"), (7 * 60 + 5, "7m"), (5 * 3600 + 12 * 60, "5h 12m"), (2 * 86400 + 3 * 3600, "2d 3h")],
)
def test_a_running_time_reads_in_its_two_largest_units(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def ready(reserved: Reservation | None) -> Report:
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    return Report(7, Phase.READY, at, running_since=at - timedelta(hours=2, minutes=5), reserved=reserved)


def test_a_ready_comment_says_what_the_environment_reserves_and_since_when_it_runs() -> None:
    comment = render_comment(ready(Reservation(0.1, 64 * MI)), None, "https://web-7.preview.test")
    (line,) = [line for line in comment.splitlines() if line.startswith("- **Reserves:**")]
    assert "`0.1 CPU, 64 MiB memory`" in line
    assert "running since 2026-12-02 09:55 UTC (2h 5m at this update)" in line


def test_a_cluster_that_could_not_be_asked_shows_unknown_in_the_comment() -> None:
    comment = render_comment(ready(None), None, "https://web-7.preview.test")
    assert "- **Reserves:** unknown (the cluster could not be asked)" in comment


def test_a_comment_without_a_running_environment_has_no_cost_line() -> None:
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    torn = Report(7, Phase.TORN_DOWN, at, reason="the PR was closed", running_since=at, reserved=Reservation(1, 1))
    assert "Reserves" not in render_comment(torn, None, None)
    assert "Reserves" not in render_comment(Report(7, Phase.READY, at), None, None), "reservations off"


def test_a_reader_whose_cluster_does_not_answer_says_unknown() -> None:
    config = client.Configuration()
    config.host = "http://127.0.0.1:9"  # discard port: nothing listens
    reader = QuotaReader(api=client.ApiClient(config), timeout=2.0)
    assert reader.read("pr-7") is None
    assert reader.read("not-a-stack") is None


def test_a_reader_finds_the_namespace_of_a_pr_and_of_a_branch_environment_under_the_prefix() -> None:
    reader = QuotaReader("team-", api=object())
    assert reader.namespace_of("pr-42") == "team-pr-42"
    assert reader.namespace_of("br-release-1-2-12345678") == "team-br-release-1-2-12345678"


def test_after_an_up_the_pr_is_told_what_it_reserves_and_the_gauges_say_it_until_it_is_destroyed() -> None:
    reads: list[str] = []

    def reserved(stack: str) -> Reservation | None:
        reads.append(stack)
        return Reservation(0.1, 64 * MI)

    told: list[Report] = []
    source = FakeSource([pull(3)])
    service = make_service(
        source, feedback=type("Told", (), {"report": lambda _s, r: told.append(r)})(), reservations=reserved
    )
    service.reconciler.sync()
    (ready_report,) = [r for r in told if r.phase is Phase.READY]
    assert ready_report.reserved == Reservation(0.1, 64 * MI) and ready_report.running_since is not None
    sample = service.metrics.registry.get_sample_value
    assert sample("prenv_environment_requests_cpu_cores", {"pr": "3"}) == 0.1
    assert sample("prenv_environment_requests_memory_bytes", {"pr": "3"}) == 64 * MI

    service.reconciler.sync()
    assert reads == ["pr-3"], "an unchanged PR costs no read of the cluster"

    source.close(3)
    service.reconciler.sync()
    assert "prenv_environment_requests_cpu_cores{" not in service.metrics.render().decode()


def test_an_unknown_reservation_is_no_gauge_and_the_comment_says_unknown() -> None:
    told: list[Report] = []
    service = make_service(
        FakeSource([pull(4)]),
        feedback=type("Told", (), {"report": lambda _s, r: told.append(r)})(),
        reservations=lambda _stack: None,
    )
    service.reconciler.sync()
    (ready_report,) = [r for r in told if r.phase is Phase.READY]
    assert "unknown (the cluster could not be asked)" in render_comment(
        ready_report, PullRequest(4, "a" * 40, "b", "main", "x", "t"), None
    )
    assert "prenv_environment_requests_cpu_cores{" not in service.metrics.render().decode()


def test_a_reader_without_a_cluster_configured_or_with_an_unreadable_kubeconfig_says_unknown(tmp_path: Path) -> None:
    assert QuotaReader(env={}).read("pr-7") is None
    assert QuotaReader(env={"KUBECONFIG": str(tmp_path / "missing.yaml")}).read("pr-7") is None
