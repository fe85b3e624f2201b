"""``python -m prenv.toolchain build|env|status``: the commands behind ``make tools`` and ``make tools-env``."""

from __future__ import annotations

import argparse
import logging
import sys

from prenv.errors import ToolError
from prenv.toolchain import debian
from prenv.toolchain.build import build
from prenv.toolchain.env import shell_exports
from prenv.toolchain.recipes.pulumi_cli import engine_version
from prenv.toolchain.status import tool_statuses
from prenv.toolchain.versions import check_installed_sdks, load_pins

logger = logging.getLogger("prenv.toolchain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prenv.toolchain", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build what is missing (all tools when no NAME is given)")
    p_build.add_argument("names", nargs="*", metavar="NAME", help="tool name, e.g. pulumi or etcd")
    sub.add_parser("env", help='print shell exports: eval "$(python -m prenv.toolchain env)"')
    sub.add_parser("status", help="what is built, at which version, from what")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")

    try:
        if args.command == "build":
            build(args.names)
        elif args.command == "env":
            sys.stdout.write(shell_exports())
        else:
            _status()
    except ToolError as e:
        print(f"make tools: {e}", file=sys.stderr)
        return 1
    return 0


def _status() -> None:
    pins = load_pins()
    print(
        f"pins: pulumi=={pins.pulumi} (engine {engine_version(pins)}), pulumi-kubernetes=={pins.pulumi_kubernetes}, "
        f"kubernetes {pins.kubernetes}, etcd {pins.etcd}, kwok {pins.kwok}, coredns {pins.coredns}, "
        f"traefik {pins.traefik}, cri-tools {pins.cri_tools}"
    )
    rows = tool_statuses(pins)
    width = max(len(r.name) for r in rows)
    for r in rows:
        state = "built  " if r.built else "MISSING"
        timing = f"  ({r.seconds:.0f}s, peak {r.peak_rss_mb:.0f} MB)" if r.built and r.seconds else ""
        print(f"{r.name:<{width}}  {r.version:<9} {state} {r.path}  [{r.source}]{timing}")
    absent = debian.missing(debian.PACKAGES)
    present = [p for p in debian.PACKAGES if p not in absent]
    print(
        f"debian packages (real node, demo, tests): installed {' '.join(present) or 'none'}; "
        f"missing {' '.join(absent) or 'none'}"
    )
    for problem in check_installed_sdks(pins):
        print(f"warning: {problem}")


if __name__ == "__main__":
    sys.exit(main())
