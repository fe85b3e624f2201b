"""The Pulumi program of project ``prenv``: validates config, then builds the stack its name asks for.

- ``pr-<n>``: one preview environment (stacks/preview.py);
- ``shared``: cluster-wide pieces, deployed once (stacks/shared.py);
- ``driver``: prenv itself, installed in the cluster (stacks/incluster.py);
- ``preview``: the template every PR stack starts from — not deployable, says what to run instead.
"""

from pathlib import Path

import pulumi

from prenv import naming
from prenv.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent


def main() -> None:
    stack = pulumi.get_stack()
    try:
        if stack == "preview":
            raise ConfigError(
                "stack",
                "'preview' is the template for PR stacks and is not deployable. Deploy a PR with "
                "`prenv up --pr <n> --sha <sha>`, or `pulumi up -s pr-<n>` after "
                "`pulumi config set -s pr-<n> prenv:sha <sha>`.",
            )
        if stack == "shared":
            from stacks import shared

            shared.run(PROJECT_DIR)
        elif stack == "driver":
            from stacks import incluster

            incluster.run()
        elif naming.pr_of_stack(stack) is not None:
            from stacks import preview

            preview.run(PROJECT_DIR)
        else:
            raise ConfigError("stack", f"unknown stack {stack!r}: expected pr-<n>, shared, driver or preview")
    except ConfigError as e:
        raise pulumi.RunError(f"invalid configuration: {e}") from None


main()
