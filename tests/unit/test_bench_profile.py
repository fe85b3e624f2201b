"""How ``python -m bench profile`` turns a recorded engine log, the wrapper's exec times and CPU samples into phases.

The recording (tests/data/profile/) is one up and one destroy of ``pr-7001`` on the benchmark world's KWOK cluster,
trimmed to the lines the profile reads. Nothing here asserts how long anything took: only which phases and spans
the parser finds, in which order, and that the windows add up to the operation.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.profile import (
    GATEWAY_BEFORE,
    PROCESS_START,
    Exec,
    LogLine,
    Operation,
    TreeSampler,
    aggregate,
    engine_marks,
    parse_execs,
    parse_importtime,
    parse_log,
    phases,
    role_of,
    spans,
    summarise_operation,
    to_markdown,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "profile"


def _recorded(kind: str) -> tuple[list[Exec], list[LogLine]]:
    return parse_execs((DATA / "execs.log").read_text()), parse_log((DATA / f"{kind}.log").read_text())


def _bounds(execs: list[Exec], kind: str) -> tuple[float, float]:
    """The gateway call around the recorded commands: the up ends before the destroy's first command starts."""
    first = {e.command: e.t for e in reversed(execs)}
    if kind == "up":
        return first["stack init"] - 0.01, first["stack select"] - 0.01
    return first["stack select"] - 0.01, first["stack rm"] + 1.0


def test_the_engine_log_is_read_with_nanosecond_times_and_other_stderr_is_skipped() -> None:
    log = parse_log((DATA / "up.log").read_text())

    assert all(isinstance(line, LogLine) for line in log)
    assert not any(line.msg.startswith("flag provided") for line in log)  # the plain stderr line in the recording
    assert log == sorted(log, key=lambda line: line.t)
    assert parse_log('{"time": "2026-12-02T10:00:00.000000001Z", "msg": "x"}\n')[0].t == pytest.approx(
        1796205600.000000001
    )


@pytest.mark.parametrize(
    ("args", "command"),
    [
        ("--non-interactive stack init pr-7001", "stack init"),
        ("--non-interactive config set-all --stack pr-7001 --plaintext prenv:pr=7001", "config set-all"),
        ("--non-interactive up --yes --skip-preview --stack pr-7001", "up"),
        ("--non-interactive destroy --yes --stack pr-7001", "destroy"),
        ("--non-interactive stack rm --yes pr-7001", "stack rm"),
        ("version", "version"),
    ],
    ids=["stack init", "config set-all", "up", "destroy", "stack rm", "version"],
)
def test_a_pulumi_command_is_named_by_its_words_not_its_flags(args: str, command: str) -> None:
    assert Exec(0.0, 1, tuple(args.split())).command == command


def test_an_up_splits_into_the_documented_phases_in_order() -> None:
    execs, log = _recorded("up")
    start, end = _bounds(execs, "up")

    names = [w.name for w in phases(start, end, execs, "up", log)]

    assert names[:4] == [GATEWAY_BEFORE, "`pulumi stack init`", "`pulumi config set-all`", PROCESS_START]
    for phase in (
        "stack and checkpoint load",
        "language host probe (About)",
        "required packages (the language host asks Python)",
        "program start: Python, pulumi SDK imports",
        "program: stacks/components imports, declaring resources",
        "resource operations: provider starts, CRUD, awaits, checkpoints",
        "program shutdown (Python exit)",
        "plugin shutdown",
        "CLI exit",
    ):
        assert phase in names
    assert names.index("program start: Python, pulumi SDK imports") < names.index(
        "resource operations: provider starts, CRUD, awaits, checkpoints"
    )
    assert names[-1] == "CLI exit"


def test_a_destroy_has_no_program_phases_and_ends_with_stack_rm() -> None:
    execs, log = _recorded("destroy")
    start, end = _bounds(execs, "destroy")

    names = [w.name for w in phases(start, end, execs, "destroy", log)]

    assert names[:3] == [GATEWAY_BEFORE, "`pulumi stack select`", PROCESS_START]
    assert "resource operations: provider starts, CRUD, awaits, checkpoints" in names
    assert not [n for n in names if n.startswith("program")]
    assert names[-1] == "`pulumi stack rm`"


@pytest.mark.parametrize("kind", ["up", "destroy"])
def test_the_phases_are_consecutive_and_add_up_to_the_operation(kind: str) -> None:
    execs, log = _recorded(kind)
    start, end = _bounds(execs, kind)

    windows = phases(start, end, execs, kind, log)

    assert windows[0].start == start
    assert windows[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert all(w.seconds >= 0 for w in windows)
    assert sum(w.seconds for w in windows) == pytest.approx(end - start)


def test_the_engine_marks_of_an_up_are_in_time_order_and_the_about_probe_precedes_the_update() -> None:
    _, log = _recorded("up")

    marks = engine_marks(log)

    assert [t for t, _ in marks] == sorted(t for t, _ in marks)
    names = [name for _, name in marks]
    assert names.index("language host probe (About)") < names.index("engine start: language host start")


def test_spans_name_each_provider_start_call_and_checkpoint_write() -> None:
    _, up_log = _recorded("up")
    _, destroy_log = _recorded("destroy")

    up = [s.name for s in spans(up_log)]
    down = [s.name for s in spans(destroy_log)]

    for plugin in ("random", "pulumi-python", "kubernetes"):
        assert up.count(f"{plugin}: process start to handshake") == 1
        assert down.count(f"{plugin}: process start to handshake") == 1
    assert up.count("kubernetes: Create") == 11  # the stack's eleven Kubernetes objects
    assert up.count("pulumi-python: Create") == 1  # the database branch, through the dynamic provider
    assert down.count("kubernetes: Delete") == 11
    assert up.count("checkpoint write") == sum(1 for line in up_log if line.msg.startswith("Saved stack"))
    assert "language host (python): process start to first call" in up


def test_a_phase_gets_the_trees_cpu_during_its_window_and_same_named_windows_add_up() -> None:
    execs, log = _recorded("up")
    start, end = _bounds(execs, "up")

    op = summarise_operation("up", start, end, 3.0, execs, log, lambda t: 0.5 * (t - start), {"program (python)": 1.0})

    by_name = {p["phase"]: p for p in op.phases}
    assert len(by_name) == len(op.phases)  # "plugin shutdown" and "stack and checkpoint load" appear twice: merged
    for p in op.phases:
        assert p["cpu_s"] == pytest.approx(0.5 * p["wall_s"], abs=0.002)
    assert op.processes == ["stack init", "config set-all", "up"]
    assert op.sampled_cpu_s == pytest.approx(0.5 * (end - start), abs=0.002)


@pytest.mark.parametrize(
    ("comm", "cmdline", "role"),
    [
        ("pulumi", "/cache/bin/pulumi\0up", "pulumi CLI / engine"),
        ("pulumi-language", "/x/pulumi-language-python\x00127.0.0.1:1", "language host"),
        ("python", "python\0/x/pulumi-language-python-exec\0--monitor", "program (python)"),
        ("python", "python\0-m\0pulumi.dynamic\0127.0.0.1:1", "dynamic provider (python)"),
        ("sh", "/bin/sh\0/x/pulumi-resource-pulumi-python\0127.0.0.1:1", "dynamic provider (shim)"),
        ("pulumi-resource", "/p/resource-kubernetes-v4.25.0/pulumi-resource-kubernetes\0", "kubernetes provider"),
        ("pulumi-resource", "/p/resource-random-v4.21.4/pulumi-resource-random\0", "random provider"),
        ("python3", "python3\0-c\0import importlib.metadata", "language host's python helpers"),
    ],
    ids=["engine", "language host", "program", "dynamic python", "dynamic shim", "kubernetes", "random", "helper"],
)
def test_each_process_is_given_its_role_from_its_command_line(comm: str, cmdline: str, role: str) -> None:
    assert role_of(comm, cmdline) == role


def test_importtime_output_is_summed_by_top_level_package() -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        100 |   psycopg.pq\n"
        "import time:       200 |        300 | psycopg\n"
        "import time:      1000 |       1000 | pulumi\n"
        "some other stderr line\n"
    )

    assert parse_importtime(text) == {"psycopg": pytest.approx(0.0003), "pulumi": pytest.approx(0.001)}


def test_the_sampler_interpolates_the_trees_cpu_and_keeps_counting_across_a_forget() -> None:
    sampler = TreeSampler()
    sampler.timeline = [(10.0, 0), (11.0, 100), (12.0, 100)]  # ticks: 100 per second at the usual CLK_TCK

    assert sampler.cpu_at(10.5) == pytest.approx(sampler.cpu_at(11.0) / 2)
    assert sampler.cpu_at(9.0) == 0.0
    assert sampler.cpu_at(13.0) == sampler.cpu_at(12.0)


def test_the_markdown_names_each_phase_and_the_totals_of_both_operations() -> None:
    execs, up_log = _recorded("up")
    _, destroy_log = _recorded("destroy")
    ops = {
        kind: summarise_operation(
            kind, *_bounds(execs, kind), 2.0, execs, log, lambda t: t / 10, {"pulumi CLI / engine": 1.0}
        )
        for kind, log in (("up", up_log), ("destroy", destroy_log))
    }
    samples: list[dict[str, Operation]] = [ops, ops, ops]
    result = {
        "label": "the committed code",
        "conditions": {
            "cluster": "KWOK",
            "seed": "2 rows",
            "parallelism": 1,
            "samples": 3,
            "command": "python -m bench profile",
            "started": "2026-12-02T10:00:00+00:00",
            "finished": "2026-12-02T10:05:00+00:00",
            "load_before": {"load1": 3.2},
            "under_load": True,
        },
        "operations": aggregate(samples, []),
    }

    text = to_markdown(result)

    assert "**under load**" in text
    assert "| program start: Python, pulumi SDK imports |" in text
    assert "| `pulumi stack rm` |" in text
    assert text.count("**total (median of 3)**") == 2
    assert "| kubernetes: Create | 11 |" in text


def test_a_comparison_puts_before_and_after_side_by_side_with_the_change() -> None:
    execs, up_log = _recorded("up")
    _, destroy_log = _recorded("destroy")

    def ops(cpu: float) -> dict[str, Operation]:
        return {
            kind: summarise_operation(kind, *_bounds(execs, kind), cpu, execs, log, lambda t: t / 10, {"x": 1.0})
            for kind, log in (("up", up_log), ("destroy", destroy_log))
        }

    conditions = {"cluster": "KWOK", "seed": "2 rows", "samples": 3, "command": "python -m bench profile"}
    result = {
        "label": "the cut",
        "conditions": conditions,
        "operations": aggregate([ops(3.0)] * 3, []),
        "before": {"label": "HEAD", "operations": aggregate([ops(4.0)] * 3, [])},
    }

    text = to_markdown(result)

    assert "**Before (HEAD) and after (the cut)" in text
    assert "| up | CPU s | 4.0 | 3.0 | -1.000 (-25 %) |" in text
    assert "| destroy | CPU s | 4.0 | 3.0 | -1.000 (-25 %) |" in text


def test_older_code_is_compared_with_its_own_stack_template_patched_like_the_worlds(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from bench.profile import _before_project

    project = tmp_path / "project"
    project.mkdir()
    (project / "__main__.py").write_text("")
    mine = "config:\n  prenv:baseDomain: preview.bench\n  prenv:database: {enabled: true}\n  prenv:new: 1\n"
    (project / "Pulumi.preview.yaml").write_text(mine)
    before = tmp_path / "before"
    before.mkdir()
    w = SimpleNamespace(root=tmp_path, project_dir=project)

    assert _before_project(w, str(before)) == project  # no template of its own: the world's project

    (before / "Pulumi.preview.yaml").write_text("config:\n  prenv:baseDomain: example.com\n  prenv:old: 2\n")
    theirs = _before_project(w, str(before))

    text = (theirs / "Pulumi.preview.yaml").read_text()
    assert theirs != project
    assert (theirs / "__main__.py").exists()
    assert "prenv:old" in text
    assert "prenv:new" not in text
    assert "preview.bench" in text
    assert "example.com" not in text
