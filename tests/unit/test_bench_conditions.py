"""How benchmark rows summarise samples and state their conditions, and how reliability records render."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import conditions
from bench.conditions import Conditions, Context, Load, describe, render_conditions, summarise
from bench.reliability import render as render_reliability
from bench.report import to_markdown, upgrade
from devtools import realnode
from prenv.errors import ClusterError
from testsupport.records import Record, load_records, producing_command, write_record


def test_fewer_than_twenty_samples_give_median_min_and_max_but_no_p95() -> None:
    s = summarise([3.0, 1.0, 2.0, 10.0])

    assert s == {"n": 4, "median_s": 2.5, "min_s": 1.0, "max_s": 10.0}
    assert describe(s) == "median 2.5 s (min 1.0, max 10.0; n=4)"


def test_twenty_samples_give_the_nearest_rank_p95_which_is_not_the_maximum() -> None:
    s = summarise([float(x) for x in range(1, 21)])  # 1 … 20

    assert (s["n"], s["p95_s"], s["max_s"]) == (20, 19.0, 20.0)
    assert describe(s) == "median 10.5 s, p95 19.0 s (n=20)"


def test_one_sample_says_so_and_none_is_an_error() -> None:
    assert describe(summarise([4.2])) == "4.2 s (1 sample)"
    with pytest.raises(ValueError):
        summarise([])


@pytest.mark.parametrize(
    ("load1", "others", "busy"),
    [(0.2, (), False), (1.5, (), True), (0.2, ("123 pytest",), True)],
    ids=["idle", "high load average", "another pytest"],
)
def test_a_machine_is_busy_with_a_high_load_average_or_competing_processes(
    load1: float, others: tuple[str, ...], busy: bool
) -> None:
    load = Load(load1, load1, 2, others)

    assert load.busy is busy
    assert (load.why() == "idle") is not busy


def test_a_pytest_started_elsewhere_competes_but_this_process_and_its_children_do_not() -> None:
    child = subprocess.Popen(["bash", "-c", "exec -a pytest sleep 30"])
    # An orphan (its shell exits at once), as a pytest or pulumi started from another terminal looks from here.
    spawn = subprocess.run(
        ["bash", "-c", "(exec -a pytest sleep 30) >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    stranger = int(spawn.stdout)
    try:
        found = conditions.competitors()

        assert f"{stranger} pytest" in found
        assert not any(entry.startswith(f"{child.pid} ") for entry in found)
        assert not any(entry.startswith(f"{os.getpid()} ") for entry in found)
    finally:
        child.kill()
        child.wait()
        os.kill(stranger, 9)


def test_a_row_started_on_a_busy_machine_or_forced_says_under_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(0.1, 0.1, 2, ()))
    ctx = Context(command="python -m bench lifecycle", quick=True, under_load=True)
    c = ctx.begin(cluster="KWOK (4 fake nodes)", seed="2 rows", parallelism=2, samples=2)
    row = ctx.end(c)

    assert row["under_load"] and row["quick"] and row["command"] == "python -m bench lifecycle"
    cell = render_conditions(row)
    assert "KWOK (4 fake nodes), seed 2 rows, parallelism 2, n=2" in cell
    assert "**under load**" in cell and "**quick run, not a figure**" in cell

    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(1.9, 1.0, 2, ("42 pulumi",)))
    busy = Conditions.start(cluster="real node", seed="2 rows", parallelism=None, samples=1, command="x")
    assert busy.under_load and "42 pulumi" in busy.why_under_load


def test_afterwards_only_other_processes_make_a_row_under_load_not_its_own_load_average(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(0.3, 0.5, 2, ()))
    c = Conditions.start(cluster="real node", seed="2 rows", parallelism=2, samples=10, command="x")
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(1.2, 1.8, 2, ()))  # the run's own work
    row = c.finish()
    assert not row["under_load"] and row["load_after"]["load1"] == 1.2

    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(0.3, 0.5, 2, ()))
    c = Conditions.start(cluster="real node", seed="2 rows", parallelism=2, samples=10, command="x")
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(1.2, 1.8, 2, ("7 pytest",)))
    row = c.finish()
    assert row["under_load"] and row["why_under_load"] == "after: 1 other process(es): 7 pytest"


LEGACY = {  # the shape bench/__main__.py wrote before rows carried conditions (2026-12-01)
    "when": "2026-12-01 20:00 UTC",
    "machine": {"cpus": 2, "memory_mib": 24105},
    "lifecycle": {
        "runs": 3,
        "when": "2026-12-01 20:00 UTC",
        "time_to_ready": {
            "median_s": 2.8, "p95_s": 3.3, "max_s": 3.3, "announced_median_s": 3.4,
            "floor": {"median_s": 0.8, "p95_s": 0.9, "max_s": 0.9},
            "ratio": 3.5, "target_median_s": 15.0, "target_ratio": 4.0, "samples_s": [2.8, 2.4, 3.3],
        },
        "teardown": {
            "median_s": 7.8, "p95_s": 8.3, "max_s": 8.3, "floor": {"median_s": 10.4, "p95_s": 10.6, "max_s": 10.6},
            "ratio": 0.75, "target_median_s": 30.0, "samples_s": [7.8, 7.6, 8.3],
        },
    },
    "idle": {
        "when": "2026-12-01 20:00 UTC",
        "idle": {
            "prs": 200, "wall_s": 0.5, "pulumi_processes": 0, "github_requests": 2, "cpu_s": 0.4,
            "floor_wall_s": 105.5, "floor_pulumi_processes": 401, "floor_stacks_listed": 200, "ratio": 194.9,
            "target_pulumi_processes": 0, "target_github_requests": 3,
        },
        "memory": {
            "tracked_environments": 200, "rss_mib": 142.1, "peak_rss_mib": 146.8, "floor_rss_mib": 95.3,
            "target_rss_mib": 150,
        },
    },
}  # fmt: skip


def test_results_from_before_rows_carried_conditions_render_without_invented_figures() -> None:
    up = upgrade(LEGACY)

    assert up["lifecycle"]["time_to_ready"]["n"] == 3 and "p95_s" not in up["lifecycle"]["time_to_ready"]
    assert up["idle"]["idle"]["baseline"]["pulumi_processes"] == 401  # the old "floor" was a baseline
    assert "floor" not in up["idle"]["idle"]
    table = to_markdown(LEGACY)
    assert table.count("conditions not recorded") == 4
    assert "p95" not in table.split("\n", 1)[1]
    assert "n/a (no floor in this run)" in table


def test_a_reliability_record_says_which_command_wrote_it_and_unmeasured_orphans_are_na(tmp_path: Path) -> None:
    write_record(Record("a-check", "A", 20, 0, None, orphans_note="fake gateway: nothing deployed", run="r"), tmp_path)
    write_record(Record("b-check", "B", 3, 0, 0, order=200, run="r", command="make chaos"), tmp_path)

    records = load_records(tmp_path)
    table = render_reliability(records)

    assert records[0].command  # stamped from the process tree when written
    assert "| A | 20 | 0 | n/a (fake gateway: nothing deployed) |" in table
    unmeasured = "n/a (not measured by this check)"
    assert f"| B | 3 | 0 | 0 | {unmeasured} | {unmeasured} | `make chaos`," in table


def test_the_producing_command_is_the_environment_override_or_the_pytest_ancestor() -> None:
    assert producing_command({"PRENV_RECORD_COMMAND": "make chaos"}) == "make chaos"
    assert "pytest" in producing_command({})  # this test runs under pytest (directly or as an xdist worker)


def test_the_real_node_benchmark_refuses_a_held_lock_or_a_running_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realnode, "REAL_NODE_LOCK", tmp_path / "real-node.lock")
    monkeypatch.setattr(realnode, "running_node_processes", lambda: [])
    with (
        realnode.sole_real_node("first"),
        pytest.raises(ClusterError, match=r"holds .*real-node\.lock"),
        realnode.sole_real_node("python -m bench realnode"),
    ):
        pass

    monkeypatch.setattr(realnode, "running_node_processes", lambda: ["4242 kubelet"])
    with (
        pytest.raises(ClusterError, match=r"one already runs \(4242 kubelet\).*make demo-down"),
        realnode.sole_real_node("python -m bench realnode"),
    ):
        pass
    monkeypatch.setattr(realnode, "running_node_processes", lambda: [])
    with realnode.sole_real_node("again"):  # the refusals released the lock
        pass


REALNODE: dict[str, Any] = {
    "runs": 10,
    "cluster_up_s": 6.9,
    "cluster_rss_mib": {"after_up": 830, "after_runs": 951},
    "leftovers_after_down": [],
    "time_to_ready": {
        **summarise([5.0 + i / 10 for i in range(10)]),
        "announced": summarise([6.0] * 10),
        "floor": summarise([2.0 + i / 10 for i in range(10)]),
        "ratio": 2.2,
        "target_ratio": 2.5,
    },
    "teardown": {**summarise([11.0] * 10), "floor": summarise([10.0] * 10), "ratio": 1.1},
}


def test_the_real_node_rows_say_real_node_and_judge_the_ratio_target() -> None:
    table = to_markdown({"machine": {"cpus": 2, "memory_mib": 1024}, "realnode": REALNODE})
    rows = [line for line in table.splitlines() if line.startswith("| time to ready") or "`cluster up`" in line]

    assert "**real node**" in rows[0] and "| 2.2x | ratio ≤ 2.5 | met |" in rows[0]
    assert "median 5.45 s (min 5.0, max 5.9; n=10)" in rows[0]
    assert "up 6.9 s (1 sample); RSS 830 MiB after up, 951 MiB after the runs" in rows[1]
    assert "nothing left after down" in rows[1]


def _with_chart(chart_median: float) -> dict[str, Any]:
    builtin = REALNODE["time_to_ready"]["median_s"]
    chart = {
        **summarise([chart_median] * 10),
        "announced": summarise([chart_median + 1] * 10),
        "floor": summarise([2.5] * 10),
        "ratio": round(chart_median / 2.5, 2),
        "target_ratio": 2.5,
    }
    versus = {"ratio": round(chart_median / builtin, 2), "target_ratio": 1.5, "floor_ratio": round(2.5 / 2.45, 2)}
    return {**REALNODE, "helm": {"time_to_ready": chart, "teardown": REALNODE["teardown"]}, "helm_vs_builtin": versus}


@pytest.mark.parametrize(
    ("chart_median", "verdict"),
    [(6.0, "| 1.1x | chart ≤ 1.5x built-in | met |"), (9.0, "| 1.65x | chart ≤ 1.5x built-in | **missed** |")],
)
def test_the_helm_chart_gets_its_own_row_and_is_judged_against_the_built_in_shape_of_the_same_run(
    chart_median: float, verdict: str
) -> None:
    table = to_markdown({"machine": {"cpus": 2, "memory_mib": 1024}, "realnode": _with_chart(chart_median)})
    [chart] = [line for line in table.splitlines() if "**real node, Helm chart**" in line]
    [versus] = [line for line in table.splitlines() if line.startswith("| Helm chart vs built-in shape")]

    assert f"median {chart_median} s (min {chart_median}, max {chart_median}; n=10)" in chart
    assert "same floor method on the chart's objects: median 2.5 s" in chart
    assert f"chart {chart_median} s vs built-in 5.45 s" in versus and verdict in versus


def test_a_real_node_result_without_the_chart_renders_no_chart_rows() -> None:
    table = to_markdown({"machine": {"cpus": 2, "memory_mib": 1024}, "realnode": REALNODE})

    assert "Helm chart" not in table


def test_a_busy_machine_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import __main__ as bench_main

    monkeypatch.setattr(bench_main, "machine_load", lambda: Load(3.5, 3.0, 2, ("77 pytest",)))
    monkeypatch.setattr(bench_main, "RESULTS", Path("/nonexistent"))  # nothing may be written

    assert bench_main.main(["db_branch"]) == 2
    out = capsys.readouterr().out
    assert "refusing to benchmark a busy machine: load average 3.50 > 1 on 2 CPUs" in out
    assert "77 pytest" in out and "--under-load" in out


@pytest.mark.parametrize(
    ("argv", "quick"),
    [
        ([], False),
        (["--quick"], True),
        (["realnode", "--runs", "3"], True),
        (["realnode", "--runs", "30"], False),
        (["burst", "--prs", "5"], True),
        (["lifecycle", "--runs", "10"], True),  # the documented run takes 20: no p95 from 10
    ],
    ids=["documented", "quick", "fewer runs", "more runs", "fewer PRs", "fewer than 20"],
)
def test_fewer_samples_than_documented_is_a_quick_run_that_is_not_a_figure(argv: list[str], quick: bool) -> None:
    from bench.__main__ import ALL, is_quick, parse

    args = parse(argv)

    assert is_quick(args, args.which or list(ALL)) is quick


def test_a_row_waits_for_its_own_previous_rows_load_to_decay_before_judging_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decaying = iter([Load(3.4, 2.0, 2, ()), Load(2.1, 1.9, 2, ()), Load(1.3, 1.8, 2, ()), Load(0.8, 1.7, 2, ())])
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: next(decaying))
    clock = iter(range(0, 1000, 5))
    waits: list[float] = []

    load, waited = conditions.settle(sleep=waits.append, clock=lambda: float(next(clock)))

    assert load.load1 == 0.8 and not load.busy
    assert waits == [conditions.SETTLE_POLL_S] * 3
    assert waited == 20.0


def test_a_load_that_does_not_decay_in_time_still_marks_the_row_under_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(1.7, 1.7, 2, ()))
    ticks = iter(range(0, 10_000, 50))

    load, waited = conditions.settle(limit=200.0, sleep=lambda _s: None, clock=lambda: float(next(ticks)))

    assert load.busy and waited >= 200.0


def test_other_processes_make_a_row_under_load_at_once_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "machine_load", lambda me=None: Load(1.9, 1.0, 2, ("42 pulumi",)))
    waits: list[float] = []

    load, waited = conditions.settle(sleep=waits.append, clock=lambda: 0.0)

    assert load.others == ("42 pulumi",) and waits == [] and waited == 0.0


def test_a_settled_rows_cell_says_how_long_it_waited() -> None:
    row = {
        "cluster": "real node",
        "seed": "2 rows",
        "parallelism": None,
        "samples": 10,
        "started": "2026-12-02T13:10:00+00:00",
        "finished": "2026-12-02T13:14:00+00:00",
        "load_before": {"load1": 0.95},
        "settled_s": 45.0,
    }
    assert "load 0.95 after 45 s settling" in render_conditions(row)
