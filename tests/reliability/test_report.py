"""The reliability table: records per check and worker, summed per run, rendered for the README."""

from __future__ import annotations

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
        "| check | trials | failures | orphans",
        "|---|---|---|---|---|",
        "| A | 20 | 1 | 2",
        "| B | 3 | 0 | 0",
    ]
    out = tmp_path / "table.md"
    assert main(["--dir", str(tmp_path), "--out", str(out), "--readme", "-"]) == 0
    assert out.read_text() == table


def test_a_check_name_that_is_not_a_slug_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slug"):
        write_record(Record("../evil", "x", 1, 0, 0), tmp_path)


def test_a_test_that_fails_after_recording_leaves_a_failed_record_and_one_that_crashes_no_green_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reliability import harness

    monkeypatch.setenv("PRENV_RELIABILITY_DIR", str(tmp_path))
    harness.begin_test("t.py::test_a")
    harness.record("a-check", "A", trials=5, failures=0, orphans=0, order=1, unit="x")
    harness.end_test(failed=True, outcome="call")
    harness.begin_test("t.py::test_b")
    harness.record("b-check", "B", trials=5, failures=0, orphans=0, order=2, unit="x")
    harness.end_test(failed=False)

    harness.begin_test("t.py::test_b")  # the next run of test_b crashes before it records anything
    harness.end_test(failed=True, outcome="call")

    a, b = load_records(tmp_path)
    assert (a.trials, a.failures, a.details["status"]) == (5, 1, "test failed after recording (call)")
    assert (b.trials, b.failures, b.orphans, b.orphans_note) == (0, 1, None, "the check did not finish")
    assert b.details == {"test": "t.py::test_b", "status": "did not finish"}
