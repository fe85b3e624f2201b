"""``prenv cluster up|down|status``: the embedded cluster from a shell.

Human output goes to stderr as one line per step with the elapsed time; stdout carries only the result (the
kubeconfig path for ``up``, the JSON document for ``status --json``) so that scripts can capture it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from prenv.cluster.layout import DEFAULT_NAME
from prenv.cluster.records import ClusterState, NodeKinds
from prenv.cluster.runtime import EmbeddedCluster
from prenv.errors import ClusterError, PrenvError

app = typer.Typer(no_args_is_help=True, help="The embedded Kubernetes cluster (etcd, apiserver, KWOK, Traefik).")

_err = Console(stderr=True, highlight=False, soft_wrap=True)

NameOption = typer.Option(DEFAULT_NAME, "--name", help="Cluster name; clusters with different names coexist.")
StateDirOption = typer.Option(
    None,
    "--state-dir",
    help="State directory (default: $PRENV_STATE_DIR or <checkout>/.state).",
    envvar="PRENV_STATE_DIR",
)


def _progress(step: str, elapsed: float) -> None:
    _err.print(f"[dim]\\[{elapsed:5.1f}s][/dim] {step}")


def _fail(e: PrenvError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {e}")
    return typer.Exit(1)


NodesOption = typer.Option(
    NodeKinds.KWOK,
    "--nodes",
    help="kwok: simulated nodes only; real: one real node (kubelet on containerd, kube-proxy, CoreDNS; needs root); "
    "both. Fixed when the cluster is created.",
)


@app.command()
def up(name: str = NameOption, state_dir: Path | None = StateDirOption, nodes: NodeKinds = NodesOption) -> None:
    """Start the cluster (or report that it runs) and print its kubeconfig path."""
    try:
        info = EmbeddedCluster(name, state_dir, node_kinds=nodes).up(progress=_progress)
    except PrenvError as e:
        raise _fail(e) from e
    typer.echo(str(info.kubeconfig))


ArchiveArgument = typer.Argument(..., help="An OCI image archive (e.g. .state/images/example-app.tar).")
TagOption = typer.Option([], "--as", help="Also tag it as this reference (e.g. prenv.local/app:pr-7); repeatable.")


@app.command("load-image")
def load_image(
    archive: Path = ArchiveArgument,
    tags: list[str] = TagOption,
    name: str = NameOption,
    state_dir: Path | None = StateDirOption,
) -> None:
    """Import an image archive into the real node's containerd (there is no registry to pull from)."""
    from prenv.cluster.images import read_image

    try:
        image = read_image(archive)
        EmbeddedCluster(name, state_dir).load_image(image, tuple(tags))
    except PrenvError as e:
        raise _fail(e) from e
    except (OSError, KeyError, ValueError) as e:
        raise _fail(ClusterError(f"{archive} is not an image archive written by prenv: {e}")) from e
    _err.print(f"loaded {image.ref}" + "".join(f", {t}" for t in tags))


@app.command()
def down(name: str = NameOption, state_dir: Path | None = StateDirOption) -> None:
    """Stop every process of the cluster and remove its data."""
    try:
        EmbeddedCluster(name, state_dir).down(progress=_progress)
    except PrenvError as e:
        raise _fail(e) from e


@app.command()
def status(
    name: str = NameOption,
    state_dir: Path | None = StateDirOption,
    as_json: bool = typer.Option(
        False, "--json", help='Print {"state", "kubeconfig", "server", "ca", "ingress", "nodes"} as JSON.'
    ),
) -> None:
    """Report running / stopped / broken. Exit status: 0 running, 1 broken, 3 stopped."""
    try:
        result = EmbeddedCluster(name, state_dir).status()
    except PrenvError as e:
        raise _fail(e) from e
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        colour = {ClusterState.RUNNING: "green", ClusterState.STOPPED: "yellow", ClusterState.BROKEN: "red"}
        _err.print(
            f"cluster {name}: [{colour[result.state]}]{result.state.value}[/]"
            + (f" ({result.detail})" if result.detail else "")
        )
        if result.server:
            _err.print(f"  server      {result.server}")
        _err.print(f"  kubeconfig  {result.kubeconfig}")
        if result.ingress:
            _err.print(
                f"  ingress     http://127.0.0.1:{result.ingress.http}  https://127.0.0.1:{result.ingress.https}"
            )
        if result.ca:
            _err.print(f"  local CA    {result.ca}")
    raise typer.Exit({ClusterState.RUNNING: 0, ClusterState.BROKEN: 1, ClusterState.STOPPED: 3}[result.state])


@app.command()
def wildcard(
    base_domain: str = typer.Option(..., "--base-domain", help="The certificate is for *.<base domain>."),
    name: str = NameOption,
    state_dir: Path | None = StateDirOption,
) -> None:
    """Make (once) the *.<base domain> certificate signed by the cluster's CA; print the cert and key paths."""
    try:
        pair = EmbeddedCluster(name, state_dir).wildcard_certificate(base_domain)
    except PrenvError as e:
        raise _fail(e) from e
    typer.echo(str(pair.cert))
    typer.echo(str(pair.key))
