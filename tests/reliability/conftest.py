"""Fixtures of the reliability suite: the secrets scan around every test, and the environment the driver runs with.

Every test here is watched: log records of every logger go to the collector while it runs, and whatever the test
exposed (CLI output, PR comments, error messages) is scanned for every known secret when it ends; a leak fails the
test. At the end of a session that ran the long checks (make chaos) the scan's figures are recorded as the
``secrets`` check.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator

import pytest

from devtools.localdb import LocalPostgres
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR, CollectingHandler
from testsupport.service_harness import SECRET as WEBHOOK_SECRET

_VERBOSE_LOGGERS = ("prenv", "components", "stacks", "github", "tests")


_CHAOS_RAN: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that fails or errors after writing its records rewrites them as failed (harness.end_test)."""
    report = yield
    if report.when == "setup":
        harness.begin_test(item.nodeid)
    if report.failed:
        item.stash[_FAILED] = report.when
    if report.when == "teardown" or (report.when == "setup" and report.failed):
        harness.end_test(_FAILED in item.stash, item.stash.get(_FAILED, ""))
    return report


_FAILED = pytest.StashKey[str]()


@pytest.fixture(scope="session", autouse=True)
def _secrets_record() -> Iterator[None]:
    yield
    COLLECTOR.scan()
    if not _CHAOS_RAN:
        return  # only the quick checks ran (make test): too little was captured to stand for the suite's figure
    harness.record(
        "secrets",
        "Secrets in logs, CLI output, PR comments, error messages and state files",
        trials=COLLECTOR.scanned_texts,
        failures=len(COLLECTOR.leaks),
        orphans=None,
        orphans_note="a scan: creates nothing",
        pending=None,
        pending_note="a scan: creates nothing",
        processes=None,
        processes_note="a scan: starts nothing; the session-end check fails a run that leaves any",
        of_test=False,
        order=80,
        unit="texts scanned",
        secrets_known=len(COLLECTOR.secrets),
        characters_scanned=COLLECTOR.scanned_chars,
        leaks=[f"{leak.secret} in {leak.where}" for leak in COLLECTOR.leaks][:20],
    )


@pytest.fixture(autouse=True)
def _secrets_scan(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("chaos") is not None:
        _CHAOS_RAN.append(request.node.nodeid)
    COLLECTOR.register("webhook secret", WEBHOOK_SECRET)
    COLLECTOR.register("GitHub token", harness.GITHUB_TOKEN)
    COLLECTOR.register("Pulumi passphrase", harness.PASSPHRASE)
    if "postgres" in request.fixturenames:
        server: LocalPostgres = request.getfixturevalue("postgres")
        COLLECTOR.register("PostgreSQL superuser password", server.password)
    handler = CollectingHandler(COLLECTOR, request.node.name)
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in _VERBOSE_LOGGERS}
    root.addHandler(handler)
    for name in _VERBOSE_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    leaks = COLLECTOR.scan()
    if leaks:
        pytest.fail("secrets leaked: " + "; ".join(f"{leak.secret} in {leak.where}" for leak in leaks), pytrace=False)


@pytest.fixture
def driver_env(preview_env: dict[str, str]) -> dict[str, str]:
    """The environment of a driver process: the toolchain, kubeconfig, admin DSN, and a real passphrase and token."""
    return {**preview_env, "PULUMI_CONFIG_PASSPHRASE": harness.PASSPHRASE, "GITHUB_TOKEN": harness.GITHUB_TOKEN}
