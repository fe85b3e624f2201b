"""The Go environment every build step gets, and small helpers around ``go mod download``.

Why these settings: the only network here is a filtered Go module proxy. ``sum.golang.org`` is not
reachable, so checksum-database lookups would fail every fresh download (GOSUMDB=off; go.sum files in
the wrapper modules still pin what was fetched, and the module cache verifies its own zips).
GOTOOLCHAIN=local stops a dependency's ``toolchain`` line from trying to download another Go.
``-mod=mod`` lets wrapper modules resolve their requirements without a checked-in go.sum.
Binaries are static (CGO_ENABLED=0) so they run on any glibc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prenv.errors import ToolError
from prenv.toolchain.runner import Runner


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolError("`go` is not on PATH; install Go 1.26 to run `make tools`")
    return go


def local_go_version() -> str:
    """The local Go release (e.g. ``1.26.8``), used as wrapper modules' ``go`` line."""
    proc = subprocess.run([go_binary(), "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+\.\d+(?:\.\d+)?)", proc.stdout.strip())
    if proc.returncode != 0 or match is None:
        raise ToolError(f"cannot tell the Go version: {proc.stderr.strip() or proc.stdout.strip()}")
    return match.group(1)


def go_env() -> dict[str, str]:
    """os.environ plus the settings above; GOSUMDB is left alone if the user set it."""
    env = dict(os.environ)
    flags = env.get("GOFLAGS", "").split()
    for flag in ("-mod=mod", "-buildvcs=false"):
        if not any(f.split("=")[0] == flag.split("=")[0] for f in flags):
            flags.append(flag)
    env["GOFLAGS"] = " ".join(flags)
    env.setdefault("GOSUMDB", "off")
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    return env


@dataclass(frozen=True)
class Module:
    """A module version fetched into the read-only module cache."""

    path: str
    version: str
    dir: Path
    go_mod: Path
    origin_hash: str


def download(runner: Runner, path: str, version: str) -> Module:
    """``go mod download -json path@version`` (a no-op when already in the module cache)."""
    out = runner.capture(
        f"download {path}@{version}",
        [go_binary(), "mod", "download", "-json", f"{path}@{version}"],
        env=go_env(),
        cwd=Path.home(),
    )
    info = json.loads(out)
    if info.get("Error"):
        raise ToolError(f"cannot download {path}@{version}: {info['Error']}")
    origin = info.get("Origin") or {}
    return Module(
        path=path,
        version=version,
        dir=Path(info["Dir"]),
        go_mod=Path(info["GoMod"]),
        origin_hash=str(origin.get("Hash", "")),
    )


@dataclass(frozen=True)
class GoMod:
    """The parts of a go.mod a wrapper module needs to repeat."""

    go: str
    requires: dict[str, str]
    replaces: dict[str, str]  # "old" or "old version" -> "new version" or "./local/path"
    godebug: tuple[str, ...]
    excludes: tuple[str, ...] = ()  # "module version"

    def non_local_replaces(self) -> dict[str, str]:
        """Replacements pointing at other modules (local directories do not exist outside the repo)."""
        return {old: new for old, new in self.replaces.items() if not new.startswith(("./", "../", "/"))}

    def local_replaces(self) -> dict[str, str]:
        return {old: new for old, new in self.replaces.items() if new.startswith(("./", "../", "/"))}


_LINE_COMMENT = re.compile(r"//.*$")


def parse_go_mod(text: str) -> GoMod:
    """A tolerant reader for the directives we use (go, require, replace, exclude, godebug), blocks included."""
    go = ""
    requires: dict[str, str] = {}
    replaces: dict[str, str] = {}
    godebug: list[str] = []
    excludes: list[str] = []
    block: str | None = None
    for raw in text.splitlines():
        line = _LINE_COMMENT.sub("", raw).strip()
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
                continue
            _directive(block, line, requires, replaces, godebug, excludes)
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "go":
            go = rest
        elif rest == "(":
            block = word
        else:
            _directive(word, rest, requires, replaces, godebug, excludes)
    return GoMod(go=go, requires=requires, replaces=replaces, godebug=tuple(godebug), excludes=tuple(excludes))


def _directive(
    word: str,
    rest: str,
    requires: dict[str, str],
    replaces: dict[str, str],
    godebug: list[str],
    excludes: list[str],
) -> None:
    if word == "require":
        parts = rest.split()
        if len(parts) >= 2:
            requires[parts[0]] = parts[1]
    elif word == "replace":
        old, _, new = rest.partition("=>")
        replaces[" ".join(old.split())] = " ".join(new.split())
    elif word == "godebug":
        godebug.append(rest)
    elif word == "exclude":
        excludes.append(" ".join(rest.split()))


def render_go_mod(
    module: str,
    go: str,
    requires: dict[str, str],
    replaces: dict[str, str] | None = None,
    godebug: tuple[str, ...] = (),
    excludes: tuple[str, ...] = (),
) -> str:
    """A go.mod for a wrapper module."""
    lines = [f"module {module}", "", f"go {go}", ""]
    lines += [f"godebug {d}" for d in godebug]
    lines += ["require ("] + [f"\t{p} {v}" for p, v in sorted(requires.items())] + [")", ""]
    if replaces:
        lines += ["replace ("] + [f"\t{o} => {n}" for o, n in sorted(replaces.items())] + [")", ""]
    if excludes:
        lines += ["exclude ("] + [f"\t{e}" for e in sorted(excludes)] + [")", ""]
    return "\n".join(lines)


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def ldflags(*pairs: tuple[str, str], strip: bool = True) -> str:
    """``-s -w -X k=v ...`` for version stamping."""
    flags = ["-s", "-w"] if strip else []
    flags += [f"-X {k}={v}" for k, v in pairs]
    return " ".join(flags)
