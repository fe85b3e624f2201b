"""The built toolchain end to end: the engine through the Automation API and the plain CLI against a file://
backend with plugins offline; the node and ingress binaries at their pinned releases; the node's Debian packages.

The program uses a Python dynamic provider (its create returns a generated value, kept secret), which
also proves the ``pulumi-resource-pulumi-python`` shim and the language host's exec path work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest
from pulumi import automation as auto

from prenv import toolchain
from prenv.toolchain import debian
from prenv.toolchain.versions import load_pins
from tests.fixtures.toolchain import inline_stack

pytestmark = pytest.mark.integration

PROJECT = "toolchain-check"


def program() -> None:
    """A dynamic resource whose id and value are generated at create time; the value is exported secret."""

    # Defined inside the program so dill serialises the provider by value: the provider process
    # cannot import this test module.
    class TokenProvider(pulumi.dynamic.ResourceProvider):
        def create(self, props: dict[str, object]) -> pulumi.dynamic.CreateResult:
            import secrets

            value = secrets.token_hex(16)
            return pulumi.dynamic.CreateResult(id_=value[:8], outs={"value": value})

    class Token(pulumi.dynamic.Resource):
        value: pulumi.Output[str]

        def __init__(self, name: str) -> None:
            super().__init__(
                TokenProvider(),
                name,
                {"value": None},
                pulumi.ResourceOptions(additional_secret_outputs=["value"]),
            )

    token = Token("token")
    pulumi.export("token", token.value)


PROGRAM_FILE = textwrap.dedent(
    '''
    """The same program as test_toolchain.program, as a project's __main__.py."""
    import secrets

    import pulumi
    import pulumi.dynamic


    class TokenProvider(pulumi.dynamic.ResourceProvider):
        def create(self, props):
            value = secrets.token_hex(16)
            return pulumi.dynamic.CreateResult(id_=value[:8], outs={"value": value})


    class Token(pulumi.dynamic.Resource):
        def __init__(self, name):
            super().__init__(
                TokenProvider(), name, {"value": None},
                pulumi.ResourceOptions(additional_secret_outputs=["value"]),
            )


    pulumi.export("token", Token("token").value)
    '''
)


def no_download_lines(text: str) -> None:
    offending = [line for line in text.splitlines() if "download" in line.lower()]
    assert not offending, offending


def test_automation_api_up_is_secret_then_idempotent_then_destroyed_and_removed(
    tmp_path: Path, pulumi_env: dict[str, str], pulumi_command: auto.PulumiCommand
) -> None:
    output: list[str] = []
    stack = inline_stack(tmp_path, PROJECT, program, pulumi_command=pulumi_command, pulumi_env=pulumi_env)
    on_output: Callable[[str], None] = output.append

    up = stack.up(on_output=on_output)
    token = up.outputs["token"]
    assert token.secret is True
    assert isinstance(token.value, str) and len(token.value) == 32
    assert up.summary.result == "succeeded"

    again = stack.up(on_output=on_output)
    assert set((again.summary.resource_changes or {}).keys()) == {"same"}
    assert again.outputs["token"].value == token.value

    destroy = stack.destroy(on_output=on_output)
    assert destroy.summary.result == "succeeded"
    stack.workspace.remove_stack("dev")
    assert all(s.name != "dev" for s in stack.workspace.list_stacks())
    no_download_lines("\n".join(output))


def test_cli_login_init_up_destroy_and_rm_on_a_file_backend(tmp_path: Path, pulumi_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n", encoding="utf-8")
    (project / "__main__.py").write_text(PROGRAM_FILE, encoding="utf-8")
    backend = tmp_path / "state"
    backend.mkdir()
    # A private PULUMI_HOME: `pulumi login` writes credentials there, and the shared one must not change.
    # It shares the built plugins: the language host requires the plugin of every installed Pulumi package.
    home = tmp_path / "home"
    home.mkdir()
    (home / "plugins").symlink_to(Path(pulumi_env["PULUMI_HOME"]) / "plugins", target_is_directory=True)
    env = {**os.environ, **pulumi_env, "PULUMI_HOME": str(home)}
    env.pop("PULUMI_BACKEND_URL", None)

    def pulumi(*args: str) -> str:
        proc = subprocess.run(
            ["pulumi", *args, "--non-interactive"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, f"pulumi {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        assert "from $PATH" not in proc.stderr, proc.stderr
        no_download_lines(proc.stdout + proc.stderr)
        return proc.stdout

    pulumi("login", backend.as_uri())
    pulumi("stack", "init", "dev")
    pulumi("up", "--yes")
    outputs = json.loads(pulumi("stack", "output", "--json"))
    assert outputs == {"token": "[secret]"}
    revealed = json.loads(pulumi("stack", "output", "--json", "--show-secrets"))
    assert len(revealed["token"]) == 32
    pulumi("destroy", "--yes")
    pulumi("stack", "rm", "--yes", "dev")
    assert json.loads(pulumi("stack", "ls", "--json")) == []


def test_engine_reports_the_expected_version_and_kubernetes_plugin_is_installed_offline(
    pulumi_env: dict[str, str],
) -> None:
    pins = load_pins()
    env = {**os.environ, **pulumi_env}
    version = subprocess.run(
        ["pulumi", "version"], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert version == f"v{pins.engine}"
    listing = subprocess.run(
        ["pulumi", "plugin", "ls"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert ["kubernetes", "resource", pins.pulumi_kubernetes] in [row[:3] for row in rows]
    no_download_lines(listing.stdout + listing.stderr)


UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
users:
- name: nobody
  user: {token: none}
"""


def test_kubernetes_provider_loads_from_pulumi_home_and_previews_without_a_cluster(
    tmp_path: Path, pulumi_env: dict[str, str], pulumi_command: auto.PulumiCommand
) -> None:
    import pulumi_kubernetes as k8s

    def k8s_program() -> None:
        provider = k8s.Provider("k", kubeconfig=UNREACHABLE_KUBECONFIG)
        k8s.core.v1.Namespace(
            "ns", metadata={"name": "toolchain-check"}, opts=pulumi.ResourceOptions(provider=provider)
        )

    stack = inline_stack(tmp_path, PROJECT, k8s_program, pulumi_command=pulumi_command, pulumi_env=pulumi_env)
    output: list[str] = []
    preview = stack.preview(on_output=output.append)
    assert preview.change_summary == {"create": 3}  # stack, provider, namespace
    no_download_lines("\n".join(output))


def node_tool_versions() -> list[tuple[str, list[str], str]]:
    pins = load_pins()
    return [
        ("kubelet", ["--version"], f"Kubernetes v{pins.kubernetes}"),
        ("kube-proxy", ["--version"], f"Kubernetes v{pins.kubernetes}"),
        ("kube-apiserver", ["--version"], f"Kubernetes v{pins.kubernetes}"),
        ("coredns", ["-version"], f"CoreDNS-{pins.coredns}"),
        ("traefik", ["version"], f"v{pins.traefik}"),
        ("crictl", ["--version"], f"crictl version {pins.cri_tools}"),
        ("pause", ["-v"], "prenv-pause 1.0"),
        ("probe", ["-v"], "prenv-probe 1.0"),
    ]


@pytest.mark.parametrize(("tool", "args", "expected"), node_tool_versions(), ids=[t[0] for t in node_tool_versions()])
def test_node_and_ingress_binaries_report_the_pinned_release(tool: str, args: list[str], expected: str) -> None:
    proc = subprocess.run(
        [str(toolchain.tool_path(tool)), *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout + proc.stderr
    assert "dev" not in (proc.stdout + proc.stderr).split()  # traefik without its version flag says "dev"


def test_the_nodes_debian_packages_are_installed_after_make_tools() -> None:
    assert debian.missing(debian.PACKAGES) == []
    for binary in ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "umoci"):
        assert shutil.which(binary, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), binary
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        assert (Path(debian.CNI_BIN_DIR) / plugin).is_file(), plugin
