"""The README's generated blocks: the benchmark and reliability tables live between marker comments and are only ever
written by the commands that render them (``python -m bench``, ``python -m bench.reliability``).

    <!-- bench:start -->            <!-- reliability:start -->
    …rendered table…                …rendered table…
    <!-- bench:end -->              <!-- reliability:end -->

tests/unit/test_bench_readme.py renders the committed results and fails when a block differs, so a hand-edited or
stale table never reaches a commit unnoticed.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


class MissingBlock(ValueError):
    """The README has no (or a malformed) ``<!-- name:start -->`` … ``<!-- name:end -->`` block."""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def block(text: str, name: str) -> str:
    """The content between the block's markers (without them)."""
    start, end = _markers(name)
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0 or text.count(start) != 1:
        raise MissingBlock(f"README has no single {start.strip()} … {end} block")
    return text[i + len(start) : j]


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block's content replaced by ``content`` (which should end with a newline)."""
    start = _markers(name)[0]
    old = block(text, name)
    i = text.find(start) + len(start)
    return text[:i] + content + text[i + len(old) :]


def rewrite(name: str, content: str, readme: Path = README) -> bool:
    """Write ``content`` into the README's block; True if the file changed."""
    text = readme.read_text(encoding="utf-8")
    new = replace_block(text, name, content)
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text
