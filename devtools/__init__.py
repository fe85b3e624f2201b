"""Developer tooling that is not part of the installed product: the demo (``make demo``) and the local PostgreSQL
server that the demo, the tests and the benchmarks start from Debian's binaries.

Nothing under ``prenv/``, ``components/`` or ``stacks/`` imports it (an import-linter contract checks that).
"""
