"""Which pulumi commands a piece of code starts: every ``pulumi`` process costs start-up time, so the benchmarks
count them and the gateway's tests pin how many an operation needs.

The Automation API starts pulumi through ``subprocess.Popen``; its ``__init__`` is wrapped for the duration.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def pulumi_commands() -> Iterator[list[list[str]]]:
    """Yield a list that fills with the words (flags left out) of every pulumi command line started meanwhile,
    e.g. ``["stack", "init", "pr-7"]``."""
    seen: list[list[str]] = []
    original = subprocess.Popen.__init__

    def init(popen: Any, args: Any, *a: Any, **kw: Any) -> None:
        if isinstance(args, list | tuple) and args and Path(str(args[0])).name == "pulumi":
            seen.append([str(x) for x in args[1:] if not str(x).startswith("-")])
        original(popen, args, *a, **kw)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
