"""What the tests and the benchmarks share: the fake GitHub server, the pulumi-mocks and service harnesses, the
pulumi-process spy and the reliability record format.

Not part of the installed product: nothing under ``prenv/``, ``components/`` or ``stacks/`` imports it (an
import-linter contract in ``make lint`` checks that).
"""
