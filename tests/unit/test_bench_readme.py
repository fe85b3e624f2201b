"""The README's benchmark and reliability tables are what the results render, never hand-written.

A block must equal the table rendered (by today's renderer) from the results it was generated from: the committed
ones (bench/results/latest.json, bench/results/reliability/*.json at git HEAD) or, when the README block itself was
regenerated and not committed yet, the working tree's. Tests that write reliability records into the working tree
therefore do not make this fail, while a hand-edited, stale or differently rendered table does.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path

import pytest

from bench import readme
from bench.reliability import render as render_reliability
from bench.report import to_markdown
from testsupport.records import load_records

ROOT = Path(__file__).resolve().parents[2]
LATEST = "bench/results/latest.json"
RECORDS = "bench/results/reliability"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _committed_bench() -> str | None:
    text = _git("show", f"HEAD:{LATEST}")
    return to_markdown(json.loads(text)) if text else None


def _committed_reliability(tmp: Path) -> str | None:
    names = _git("ls-tree", "--name-only", "HEAD", f"{RECORDS}/")
    if not names:
        return None
    for name in names.split():
        if name.endswith(".json"):
            (tmp / Path(name).name).write_text(_git("show", f"HEAD:{name}") or "", encoding="utf-8")
    return render_reliability(load_records(tmp))


def _check(block: str, candidates: dict[str, str | None], command: str) -> None:
    rendered = {k: v for k, v in candidates.items() if v is not None}
    if block in rendered.values():
        return
    nearest = rendered.get("working tree") or next(iter(rendered.values()))
    diff = "\n".join(difflib.unified_diff(nearest.splitlines(), block.splitlines(), "rendered", "README", lineterm=""))
    pytest.fail(
        f"the README block differs from what the results render ({', '.join(rendered)}); regenerate it with "
        f"`{command}` and commit it with the results:\n{diff}"
    )


def test_the_readme_bench_block_is_what_the_bench_results_render() -> None:
    block = readme.block(readme.README.read_text(encoding="utf-8"), "bench")
    working = to_markdown(json.loads((ROOT / LATEST).read_text(encoding="utf-8")))
    _check(block, {"working tree": working, "HEAD": _committed_bench()}, "python -m bench (make bench)")


def test_the_readme_reliability_block_is_what_the_reliability_records_render(tmp_path: Path) -> None:
    block = readme.block(readme.README.read_text(encoding="utf-8"), "reliability")
    working = render_reliability(load_records(ROOT / RECORDS))
    _check(
        block,
        {"working tree": working, "HEAD": _committed_reliability(tmp_path)},
        "python -m bench.reliability",
    )


def test_a_block_is_replaced_between_its_markers_and_nothing_else_changes(tmp_path: Path) -> None:
    text = (
        "intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\n"
        "outro\n<!-- reliability:start -->\nr\n<!-- reliability:end -->\n"
    )
    path = tmp_path / "README.md"
    path.write_text(text)

    assert readme.rewrite("bench", "new\ntable\n", path)
    assert path.read_text() == text.replace("old\n", "new\ntable\n")
    assert not readme.rewrite("bench", "new\ntable\n", path)
    assert readme.block(path.read_text(), "reliability") == "r\n"


def test_a_missing_or_doubled_block_is_an_error() -> None:
    with pytest.raises(readme.MissingBlock):
        readme.block("no markers here", "bench")
    doubled = "<!-- bench:start -->\na\n<!-- bench:end -->\n<!-- bench:start -->\nb\n<!-- bench:end -->\n"
    with pytest.raises(readme.MissingBlock):
        readme.block(doubled, "bench")
