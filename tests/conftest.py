"""Shared fixtures. Each real component has its own plugin module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.toolchain",
    "tests.fixtures.cluster",
    "tests.fixtures.postgres",
    "tests.fixtures.preview",
    "tests.fixtures.realnode",
    "tests.fixtures.github",
    "tests.fixtures.gitlab",
    "tests.fixtures.s3",
    "tests.fixtures.processes",
]
