"""The language host's own Go tests (tools/language-python/main_test.go), run by `make test`.

They start the host like the engine does and check the contract with the Python SDK: plain and secret
config reach the program, exit code 32 is a bail, Cancel and SIGTERM stop the program, the host exits
when the engine is gone, a missing or mismatched plugin is reported before the program runs,
requirements.txt is installed into the virtualenv. The Go environment is the toolchain's, with
``-mod=readonly`` so the checked-in go.sum must cover everything; the Python is this venv's (it has the
pulumi SDK whose config readers the stand-in program calls).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from prenv.toolchain.goenv import go_binary, go_env
from prenv.toolchain.recipes.language_host import SOURCES

pytestmark = pytest.mark.integration


def test_language_host_go_tests_pass() -> None:
    env = {**go_env(), "PRENV_TEST_PYTHON": sys.executable}
    proc = subprocess.run(
        [go_binary(), "test", "-mod=readonly", "-count=1", "-timeout", "5m", "-v", "."],
        cwd=SOURCES,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"go test in {SOURCES}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "--- FAIL" not in proc.stdout
