"""Reading the template (Pulumi.preview.yaml) and merging a stack's own values over it.

Pulumi does not inherit config between stacks, so every ``pr-<n>`` stack reads the template file as its defaults
and its own stack config (the PR values, and any key someone set on purpose) on top. Template changes therefore reach
every PR stack on its next update, and the driver only ever writes PR values. The driver uses the same functions to
validate the template at start-up and to compute the config hash it compares with what a stack last deployed.
"""

from __future__ import annotations

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
    return stackconfig.template_hash(template, image_tag)
