"""The config hash covers the files a team's own app is read from, so editing a chart in place updates every PR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prenv import stackconfig, template

BASE: dict[str, Any] = {
    "baseDomain": "preview.example.com",
    "image": {"repository": "registry.example.com/acme/shop"},
    "services": [{"name": "web", "public": True}],
}


def load(**extra: Any) -> stackconfig.Template:
    return stackconfig.load_template({**BASE, **extra})


def chart(root: Path) -> Path:
    (root / "chart" / "templates").mkdir(parents=True)
    (root / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (root / "chart" / "templates" / "a.yaml").write_text("kind: ConfigMap\n")
    return root / "chart"


def test_editing_a_file_of_the_chart_or_a_values_file_changes_the_hash(tmp_path: Path) -> None:
    path = chart(tmp_path)
    (tmp_path / "v.yaml").write_text("a: 1\n")
    t = load(app={"kind": "helm", "chart": "chart", "valuesFiles": ["v.yaml"]})
    first = stackconfig.template_hash(t, None, template.app_files_digest(tmp_path, t))
    assert first == stackconfig.template_hash(t, None, template.app_files_digest(tmp_path, t))
    (path / "templates" / "a.yaml").write_text("kind: Secret\n")
    second = stackconfig.template_hash(t, None, template.app_files_digest(tmp_path, t))
    assert second != first
    (tmp_path / "v.yaml").write_text("a: 2\n")
    assert stackconfig.template_hash(t, None, template.app_files_digest(tmp_path, t)) != second


def test_manifests_and_kustomize_directories_are_covered(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "a.yaml").write_text("kind: ConfigMap\n")
    manifests = load(app={"kind": "manifests", "files": ["k8s/*.yaml"]})
    kustomize = load(app={"kind": "kustomize", "directory": "k8s"})
    before = (template.app_files_digest(tmp_path, manifests), template.app_files_digest(tmp_path, kustomize))
    (tmp_path / "k8s" / "b.yaml").write_text("kind: Service\n")
    after = (template.app_files_digest(tmp_path, manifests), template.app_files_digest(tmp_path, kustomize))
    assert before[0] != after[0] and before[1] != after[1]


def test_the_built_in_shape_hashes_as_before(tmp_path: Path) -> None:
    t = load()
    assert template.app_files_digest(tmp_path, t) is None
    assert stackconfig.template_hash(t, None, None) == stackconfig.template_hash(t)
