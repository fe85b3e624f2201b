"""The reliability table: records per check and worker, summed per run, rendered for the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.reliability import main, render
from testsupport.records import Record, load_records, write_record

pytestmark = pytest.mark.reliability


def rec(check: str, part: str, run: str, at: str, trials: int, failures: int = 0, orphans: int = 0) -> Record:
    return Record(
        check=check,
        title=f"{check} title",
        trials=trials,
        failures=failures,
        orphans=orphans,
        details={"n": trials, "seed": "s"},
        run=run,
        part=part,
        finished_at=at,
    )


def test_parts_of_the_latest_run_are_summed_and_a_stale_part_of_an_earlier_run_is_not(tmp_path: Path) -> None:
    write_record(rec("secrets", "main", "run-1", "2026-01-01T00:00:00+00:00", 100, failures=9), tmp_path)
    write_record(rec("secrets", "gw0", "run-2", "2026-01-02T00:00:00+00:00", 10), tmp_path)
    write_record(rec("secrets", "gw1", "run-2", "2026-01-02T00:00:01+00:00", 5, orphans=1), tmp_path)

    [merged] = load_records(tmp_path)

    assert (merged.trials, merged.failures, merged.orphans) == (15, 0, 1)
    assert merged.details == {"n": 15, "seed": "s"}
    assert merged.part == "gw0+gw1"


def test_the_table_has_one_row_per_check_in_order(tmp_path: Path) -> None:
    write_record(Record("b-check", "B", 3, 0, 0, order=2, run="r", finished_at="2026-01-01T00:00:00+00:00"), tmp_path)
    write_record(Record("a-check", "A", 20, 1, 2, order=1, run="r", finished_at="2026-01-01T00:00:00+00:00"), tmp_path)

    table = render(load_records(tmp_path))

    assert [line.rsplit(" | ", 1)[0] for line in table.splitlines()[:4]] == [
        "| check | trials | failures | orphans | pending operations | processes left",
        "|---|---|---|---|---|---|---|",
        "| A | 20 | 1 | 2 | n/a (not measured by this check) | n/a (not measured by this check)",
        "| B | 3 | 0 | 0 | n/a (not measured by this check) | n/a (not measured by this check)",
    ]
    out = tmp_path / "table.md"
    assert main(["--dir", str(tmp_path), "--out", str(out), "--readme", "-"]) == 0
    assert out.read_text() == table


def test_pending_operations_and_leftover_processes_are_summed_over_parts_and_shown_beside_the_orphans(
    tmp_path: Path,
) -> None:
    at = "2026-01-01T00:00:00+00:00"
    write_record(Record("c", "C", 3, 0, 0, run="r", part="gw0", finished_at=at, pending=0, processes=1), tmp_path)
    write_record(Record("c", "C", 4, 0, 0, run="r", part="gw1", finished_at=at, pending=2, processes=0), tmp_path)
    write_record(
        Record("d", "D", 1, 0, None, orphans_note="a scan", processes=0, pending_note="nothing deployed", run="r"),
        tmp_path,
    )

    c, d = load_records(tmp_path)
    rows = render([c, d]).splitlines()[2:4]

    assert (c.pending, c.processes) == (2, 1)
    assert rows[0].startswith("| C | 7 | 0 | 0 | 2 | 1 | ")
    assert rows[1].startswith("| D | 1 | 0 | n/a (a scan) | n/a (nothing deployed) | 0 | ")


def test_a_check_name_that_is_not_a_slug_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slug"):
        write_record(Record("../evil", "x", 1, 0, 0), tmp_path)


def test_a_test_that_fails_after_recording_leaves_a_failed_record_and_one_that_crashes_no_green_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reliability import harness

    monkeypatch.setenv("PRENV_RELIABILITY_DIR", str(tmp_path))
    harness.begin_test("t.py::test_a")
    harness.record("a-check", "A", trials=5, failures=0, orphans=0, processes=0, order=1, unit="x", pending_note="-")
    harness.end_test(failed=True, outcome="call")
    harness.begin_test("t.py::test_b")
    harness.record("b-check", "B", trials=5, failures=0, orphans=0, processes=0, pending=0, order=2, unit="x")
    harness.end_test(failed=False)

    harness.begin_test("t.py::test_b")  # the next run of test_b crashes before it records anything
    harness.end_test(failed=True, outcome="call")

    a, b = load_records(tmp_path)
    assert (a.trials, a.failures, a.details["status"]) == (5, 1, "test failed after recording (call)")
    assert (b.trials, b.failures, b.orphans, b.orphans_note) == (0, 1, None, "the check did not finish")
    assert b.details == {"test": "t.py::test_b", "status": "did not finish"}


def test_a_pulumi_process_this_test_process_started_counts_as_left_over_until_it_ends() -> None:
    from tests.reliability import harness

    before = harness.pulumi_processes()
    # Any command line naming pulumi counts (engine, language host, plugins, ``python -m pulumi.dynamic``).
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "pulumi-resource-positive-control"],
        stdin=subprocess.PIPE,
    )
    try:
        assert proc.pid in harness.leftover_processes(settle=0, baseline=before)
    finally:
        proc.communicate(timeout=30)  # closes its stdin: it exits
    assert proc.pid not in harness.leftover_processes(settle=10, baseline=before)


def test_a_record_made_while_other_runs_competed_for_the_cores_says_so_in_its_row(tmp_path: Path) -> None:
    shared = {"under_load": True, "other_processes": 12, "load1_before": 2.5, "load1_after": 3.1, "cpus": 2}
    quiet = {**shared, "under_load": False, "other_processes": 0}
    write_record(Record("a", "A", 1, 0, 0, order=1, run="r", conditions=shared), tmp_path)
    write_record(Record("b", "B", 1, 0, 0, order=2, run="r", conditions=quiet), tmp_path)
    write_record(Record("c", "C", 1, 0, 0, order=3, run="r"), tmp_path)

    a, b, c = render(load_records(tmp_path)).splitlines()[2:5]

    assert a.endswith(
        "under load: machine shared with other runs (12 of their processes), 1-min load average 2.5 at start, 3.1 at "
        "end on 2 CPUs (this run's own work included) |"
    )
    assert b.endswith(
        "; no other run seen, 1-min load average 2.5 at start, 3.1 at end on 2 CPUs (this run's own work included) |"
    )
    assert c.endswith("; conditions not recorded |")


def test_a_session_record_written_during_a_failing_tests_teardown_does_not_follow_that_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reliability import harness

    monkeypatch.setenv("PRENV_RELIABILITY_DIR", str(tmp_path))
    harness.begin_test("t.py::test_last")
    harness.record(
        "secrets", "S", trials=9, failures=0, orphans=0, pending=0, processes=0, order=1, unit="x", of_test=False
    )
    harness.end_test(failed=True, outcome="teardown")

    [secrets] = load_records(tmp_path)
    assert (secrets.failures, "test" in secrets.details) == (0, False)
