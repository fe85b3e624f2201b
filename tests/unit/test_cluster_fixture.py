"""The ``cluster`` fixture fails (never skips) when the toolchain is missing, naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_toolchain_fails_the_setup_with_the_tool_error(tmp_path: Path) -> None:
    (tmp_path / "test_uses_cluster.py").write_text("def test_needs_a_cluster(cluster):\n    pass\n")
    env = {
        **os.environ,
        "PRENV_TOOLS_CACHE": str(tmp_path / "empty-tool-cache"),
        "PRENV_STATE_DIR": str(tmp_path / "state"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.fixtures.cluster",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_uses_cluster.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 error" in out.stdout and "skipped" not in out.stdout
    assert "ToolError" in out.stdout and "make tools" in out.stdout
