"""Where built tools live: a per-user cache outside the checkout, one directory per tool and version.

Building the toolchain takes minutes, so it must survive ``git clean``, new worktrees and ``make clean``;
keying directories by version lets two checkouts with different pins share the cache. A stamp file
written last in each directory marks a finished build, so a warm ``make tools`` is a few stat calls.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STAMP = ".prenv-stamp.json"


def cache_dir() -> Path:
    """``${PRENV_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/prenv/tools}``."""
    explicit = os.environ.get("PRENV_TOOLS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "prenv" / "tools"


def tool_dir(name: str, version: str) -> Path:
    """``<cache>/<name>-<version>/``: the home of one built tool."""
    return cache_dir() / f"{name}-{version}"


def bin_dir() -> Path:
    """Symlinks to the engine, its bundled language host and the cluster binaries; first on PATH."""
    return cache_dir() / "bin"


def pulumi_home() -> Path:
    """PULUMI_HOME: plugins installed by ``make tools`` (and nothing downloaded)."""
    return cache_dir() / "pulumi-home"


def work_dir(name: str) -> Path:
    """Scratch space for wrapper modules and generated sources; kept so rebuilds reuse it."""
    return cache_dir() / "work" / name


def log_dir() -> Path:
    return cache_dir() / "logs"


@dataclass(frozen=True)
class Stamp:
    """What was built in a tool directory, and from what."""

    name: str
    version: str
    source: str
    digest: str = ""
    built_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


def read_stamp(directory: Path) -> Stamp | None:
    """The stamp of a finished build, or None if the directory holds no complete build."""
    try:
        raw = json.loads((directory / STAMP).read_text(encoding="utf-8"))
        return Stamp(**raw)
    except (OSError, ValueError, TypeError):
        return None


def write_stamp(directory: Path, stamp: Stamp) -> None:
    """Write the stamp atomically; call it only once every file of the build is in place."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{STAMP}.tmp"
    tmp.write_text(json.dumps(asdict(stamp), indent=2) + "\n", encoding="utf-8")
    tmp.replace(directory / STAMP)


def link(target: Path, link_path: Path) -> None:
    """Point ``link_path`` at ``target`` (a symlink), replacing whatever was there."""
    link_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = link_path.with_name(f".{link_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link_path)
