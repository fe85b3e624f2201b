"""Reading the template (Pulumi.preview.yaml) and merging a stack's own values over it.

Pulumi does not inherit config between stacks, so every ``pr-<n>`` stack reads the template file as its defaults
and its own stack config (the PR values, and any key someone set on purpose) on top. Template changes therefore reach
every PR stack on its next update, and the driver only ever writes PR values. The driver uses the same functions to
validate the template at start-up and to compute the config hash it compares with what a stack last deployed.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from prenv import stackconfig
from prenv.errors import ConfigError

TEMPLATE_FILE = "Pulumi.preview.yaml"
TEMPLATE_STACK = "preview"


def read_template_file(project_dir: Path) -> dict[str, Any]:
    """The ``prenv:`` keys of Pulumi.preview.yaml, namespace stripped; values as YAML gave them."""
    path = project_dir / TEMPLATE_FILE
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(TEMPLATE_FILE, f"not found in {project_dir}") from None
    except yaml.YAMLError as e:
        raise ConfigError(TEMPLATE_FILE, f"is not valid YAML ({e.__class__.__name__})") from None
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{TEMPLATE_FILE}: config", "must be a mapping of prenv:<key> to values")
    return strip_namespace(config, TEMPLATE_FILE)


def strip_namespace(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        ns, _, name = str(key).partition(":")
        if ns != stackconfig.NAMESPACE or not name:
            raise ConfigError(f"{where}: {key}", "unknown key (prenv keys are written prenv:<name>)")
        if isinstance(value, dict) and set(value) == {"secure"}:
            continue  # encrypted for another stack; secrets reach PR stacks through their own config or env
        out[name] = value
    return out


def decode(value: Any) -> Any:
    """Stack config values arrive as strings (JSON for structured values); decode those, keep plain strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def effective(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Template values with the stack's own values on top (a whole top-level key replaces the template's)."""
    merged = dict(template)
    merged.update({k: decode(v) for k, v in overrides.items()})
    return merged


def config_hash(project_dir: Path, image_tag: str | None = None) -> str:
    """The hash the driver compares with a stack's ``configHash`` output (see stacks/preview.py)."""
    template = stackconfig.load_template(read_template_file(project_dir))
    return stackconfig.template_hash(template, image_tag, app_files_digest(project_dir, template))


def app_files_digest(project_dir: Path, template: stackconfig.Template) -> str | None:
    """A digest of the files a team's own app is read from: the chart directory and values files, the Kustomize
    directory, or the manifests the globs match (names and contents). None for the built-in shape and for a chart
    from a repository (its pinned version is in the template). Missing files count as absent: the program reports
    them, naming the key.

    Files outside these directories (a kustomization's ``../base``) are not covered: change the template, or push.
    """
    app = template.app
    roots: list[Path] = []
    if app.kind == "helm" and app.repo is None and app.chart:
        roots = [project_dir / app.chart, *(project_dir / f for f in app.values_files)]
    elif app.kind == "helm":
        roots = [project_dir / f for f in app.values_files]
    elif app.kind == "kustomize" and app.directory:
        roots = [project_dir / app.directory]
    elif app.kind == "manifests":
        roots = [project_dir / m for pattern in app.files for m in sorted(glob.glob(pattern, root_dir=project_dir))]
    else:
        return None
    digest = hashlib.sha256()
    for root in roots:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if not path.is_file():
                continue
            digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
