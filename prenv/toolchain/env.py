"""The one environment every pulumi invocation gets, and its shell-export form for ``make tools-env``.

Every caller (driver, tests, CLI, a developer's shell) must see the same engine, the same plugins and
no network side effects, so this is the single place that decides them: the toolchain's bin dir first
on PATH (engine, language host, exec script, dynamic-provider shim), then the virtualenv's bin so
``python3`` is the interpreter with prenv's pinned SDKs, PULUMI_HOME in the tool cache, no update
checks and no automatic plugin downloads. Callers merge the result over ``os.environ``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from prenv.toolchain import cache

# Only for local development and tests: stacks encrypted with it are not protected. Production sets
# PULUMI_CONFIG_PASSPHRASE(_FILE) or uses a KMS secrets provider, and then this value is never used.
DEV_PASSPHRASE = "prenv-insecure-development-passphrase"  # noqa: S105 - deliberately public


def venv_bin() -> Path:
    """The bin dir of the interpreter running prenv (the project's .venv under `make`)."""
    return Path(sys.executable).parent if sys.prefix == sys.base_prefix else Path(sys.prefix) / "bin"


def pulumi_env(*, dev_passphrase: bool = True) -> dict[str, str]:
    """Variables to merge over os.environ for any pulumi command or Automation API workspace.

    ``dev_passphrase=False`` leaves the passphrase decision to the caller: the driver refuses the development
    passphrase for shared backends (prenv.gateway.secrets).
    """
    path = [str(cache.bin_dir()), str(venv_bin())]
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in path]
    env = {
        "PATH": os.pathsep.join(path + rest),
        "PULUMI_HOME": str(cache.pulumi_home()),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    if dev_passphrase and not _passphrase_configured():
        env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE
    return env


def shell_exports() -> str:
    """``export K=V`` lines for ``eval "$(make -s tools-env)"``."""
    lines = [f"export {key}={shlex.quote(value)}" for key, value in pulumi_env().items()]
    if not _passphrase_configured():
        lines.append("# PULUMI_CONFIG_PASSPHRASE above is a development-only value, not a secret.")
    return "\n".join(lines) + "\n"


def _passphrase_configured() -> bool:
    # Set counts, even empty: an empty passphrase is a deliberate choice Pulumi accepts.
    return "PULUMI_CONFIG_PASSPHRASE" in os.environ or "PULUMI_CONFIG_PASSPHRASE_FILE" in os.environ
