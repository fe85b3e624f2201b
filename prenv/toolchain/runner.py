"""Run one build step at a time, with one progress line each and the Go error tail on failure.

Builds take minutes on two cores, so a person watching ``make tools`` needs to see which step is running
and how long each took; when one fails, the last lines of the compiler's output are what explains it.
Every step's full output is kept under ``<cache>/logs/``. Steps run strictly one after another: two Go
builds at once on two cores are slower than two in a row and can run the machine out of memory.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from prenv.errors import ToolError
from prenv.toolchain import cache

logger = logging.getLogger(__name__)

TAIL_LINES = 30


@dataclass(frozen=True)
class StepResult:
    """How long a step took and the peak resident memory of its largest process."""

    seconds: float
    peak_rss_mb: float


class StepFailed(ToolError):
    """A build step exited non-zero; the message names the step and carries the output's tail."""

    def __init__(self, label: str, returncode: int, tail: str, log: Path) -> None:
        super().__init__(f"step '{label}' failed (exit {returncode}); full log: {log}\n{tail}")
        self.label = label
        self.returncode = returncode
        self.tail = tail


class Runner:
    """Prints ``label ... 12.3s`` per step to ``out`` and runs commands with logs kept on disk."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.results: dict[str, StepResult] = {}

    def cached(self, label: str, detail: str = "") -> None:
        self.out.write(f"  {label}: cached{f' ({detail})' if detail else ''}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"  {text}\n")
        self.out.flush()

    def run(
        self,
        label: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StepResult:
        """Run ``argv``; raise :class:`StepFailed` with the output's tail if it exits non-zero."""
        log_path = cache.log_dir() / f"{_slug(label)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.out.write(f"  {label} ...")
        self.out.flush()
        logger.debug("running %s in %s", argv, cwd)
        started = time.monotonic()
        with log_path.open("w", encoding="utf-8") as log:
            log.write(f"$ {' '.join(map(str, argv))}\n")
            log.flush()
            proc = subprocess.Popen(
                [os.fspath(a) for a in argv],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            # wait4 gives the rusage of this child and the descendants it waited for (go -> compile/link).
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        result = StepResult(seconds=time.monotonic() - started, peak_rss_mb=usage.ru_maxrss / 1024)
        if proc.returncode != 0:
            self.out.write(f" FAILED after {result.seconds:.1f}s\n")
            self.out.flush()
            raise StepFailed(label, proc.returncode, _tail(log_path), log_path)
        self.out.write(f" {result.seconds:.1f}s (peak RSS {result.peak_rss_mb:.0f} MB)\n")
        self.out.flush()
        self.results[label] = result
        return result

    def capture(
        self,
        label: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run a quick query (no progress line) and return its stdout; failures raise StepFailed."""
        proc = subprocess.run(
            [os.fspath(a) for a in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            log_path = cache.log_dir() / f"{_slug(label)}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(proc.stdout + proc.stderr, encoding="utf-8")
            raise StepFailed(label, proc.returncode, _tail(log_path), log_path)
        return proc.stdout


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-").lower()
