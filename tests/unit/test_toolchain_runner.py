"""The step runner: one progress line per step, and a failure that names the step and shows the tail."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from prenv.toolchain.runner import Runner, StepFailed


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRENV_TOOLS_CACHE", str(tmp_path))


def test_a_step_prints_one_line_with_its_elapsed_seconds_and_peak_memory() -> None:
    out = io.StringIO()
    result = Runner(out).run("say hello", ["sh", "-c", "echo hello"])
    assert out.getvalue().count("\n") == 1
    assert out.getvalue().startswith("  say hello ... ")
    assert "s (peak RSS" in out.getvalue()
    assert result.seconds >= 0 and result.peak_rss_mb > 0


def test_a_failed_step_names_itself_and_carries_the_tail_of_its_output() -> None:
    out = io.StringIO()
    script = "for i in $(seq 1 50); do echo line $i; done; echo 'main.go:7: undefined: x' >&2; exit 3"
    with pytest.raises(StepFailed) as e:
        Runner(out).run("widget 1.0: go build", ["sh", "-c", script])
    assert e.value.returncode == 3
    message = str(e.value)
    assert "step 'widget 1.0: go build' failed (exit 3)" in message
    assert "main.go:7: undefined: x" in message
    assert "line 1\n" not in message  # only the tail
    assert "FAILED after" in out.getvalue()


def test_cached_steps_say_so() -> None:
    out = io.StringIO()
    Runner(out).cached("etcd 3.5.35", "go.etcd.io/etcd/server/v3@v3.5.35")
    assert out.getvalue() == "  etcd 3.5.35: cached (go.etcd.io/etcd/server/v3@v3.5.35)\n"
