"""The ``prenv`` command line: one Typer app; each area mounts its own sub-app here and nowhere else."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(help="Preview environments per pull request, one Pulumi stack each.", no_args_is_help=True)


def _mount() -> None:
    """Attach sub-apps. Imported lazily so that `prenv --help` stays fast and areas stay independent."""
    from prenv.cluster.cli import app as cluster_app

    app.add_typer(cluster_app, name="cluster", help="The embedded Kubernetes cluster (etcd, apiserver, KWOK).")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    _mount()
    app()
