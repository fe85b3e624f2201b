"""PreviewWorkload: a bring-your-own app — a Helm chart, a Kustomize directory or plain manifests — under prenv's
guard rails.

Two steps, so that bad input fails before anything is created:

1. :func:`prepare` runs in the stack program before any resource is registered. It reads and checks the input (the
   chart or Kustomize directory exists, values files are YAML mappings, every glob matches a file, every placeholder
   is known), fills the placeholders, and renders the app once through the provider's own invokes
   (``kubernetes:helm:template``, ``kubernetes:kustomize:directory``; nothing shells out to ``helm`` or
   ``kustomize``), so a chart that does not render and a cluster-scoped object are reported with the key and the
   object's kind and name while the stack is still empty.
2. :class:`PreviewWorkload` registers the provider's component (``helm.v4.Chart``, ``kustomize.v2.Directory``,
   ``yaml.v2.ConfigGroup``) with one transform, :class:`Guard`, which every rendered object passes through:

   - it is put in the PR's namespace. A namespace the chart or kustomization sets is *overridden*, not refused:
     charts template ``{{ .Release.Namespace }}`` and kustomizations set ``namespace:`` for their own installs, and
     both mean "the app's namespace", which here is the PR's;
   - a cluster-scoped object is refused (``Kind/name`` in the error) unless ``prenv:app.allowClusterScoped`` lists it:
     it would outlive the namespace's quota and policy and could collide with every other PR's copy;
   - it carries prenv's labels and the ``patchForce`` ownership annotation, a Deployment's, StatefulSet's or
     DaemonSet's pod template carries the commit sha (so every push rolls the pods) and prenv's labels (so the
     driver finds the PR's pods when it says why an up failed), and prenv's await choices apply:
     Services skip pulumi's endpoint-settle sleep, Ingresses wait for their controller's admission, and a workload
     that is not ready within ``prenv:rolloutTimeout`` fails the up (as the built-in shape does, components/meta.py
     and components/app.py).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.meta import INGRESS_AWAIT, OWNED, SERVICE_AWAIT
from prenv import placeholders
from prenv.errors import ConfigError
from prenv.naming import LABEL_SHA
from prenv.stackconfig import StackConfig

# Kinds that exist outside any namespace (Kubernetes' built-in ones and the common add-ons'). The transform also
# treats any object the provider left without a namespace as cluster-scoped: the provider puts every namespaced
# kind it knows (from the API server's discovery, CRDs included) in the release's namespace.
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
SCALABLE = frozenset({"Deployment", "StatefulSet"})  # what sleeps at 0 replicas (a DaemonSet has no replicas)
_AWAIT_KEYS = ("pulumi.com/skipAwait", "pulumi.com/waitFor")
_KEYS = {"helm": "prenv:app.chart", "kustomize": "prenv:app.directory", "manifests": "prenv:app.files"}


@dataclass(frozen=True)
class Guard:
    """The rules every rendered object passes: namespace, cluster scope, labels, sha, await choices.

    Args:
        namespace: the PR's namespace.
        sha: the commit sha, put on every workload's pod template.
        key: the config key the objects came from, for errors (``prenv:app.chart``).
        allow: cluster-scoped objects allowed, as ``Kind`` or ``Kind/name``.
        labels: prenv's labels, added to every object's own labels (never to selectors).
        fill: placeholder values filled into every string of the object (Kustomize output); None: no filling.
        rollout_timeout: how long an up waits for a workload to become ready (``prenv:rolloutTimeout``), as a
            Pulumi custom timeout; None: pulumi-kubernetes' default.
        asleep: the environment sleeps (prenv.sleep): every Deployment and StatefulSet at 0 replicas.
    """

    namespace: str
    sha: str
    key: str
    allow: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    fill: Mapping[str, str] | None = None
    rollout_timeout: str | None = None
    asleep: bool = False

    def object(self, obj: Mapping[str, Any], *, normalized: bool = True) -> dict[str, Any]:
        """A guarded copy of ``obj``; raises ConfigError for a cluster-scoped object that is not allowed.

        ``normalized``: the provider has already put every namespaced object in a namespace (true in the transform),
        so one without a namespace is cluster-scoped whatever its kind.
        """
        kind = str(obj.get("kind") or "")
        meta = dict(obj.get("metadata") or {})
        name = str(meta.get("name") or meta.get("generateName") or "")
        out = dict(obj)
        if self.fill is not None:
            out = placeholders.fill(out, self.fill, f"{self.key} ({kind}/{name})")
            meta = dict(out.get("metadata") or {})
        cluster_scoped = kind in CLUSTER_SCOPED or (normalized and not meta.get("namespace"))
        if cluster_scoped:
            if kind not in self.allow and f"{kind}/{name}" not in self.allow:
                raise ConfigError(
                    self.key,
                    f"renders the cluster-scoped object {kind}/{name}; a preview environment holds only objects in "
                    f"its namespace (list it in prenv:app.allowClusterScoped as {kind}/{name} to allow it)",
                )
            meta.pop("namespace", None)
        else:
            meta["namespace"] = self.namespace
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        annotations = {**OWNED, **(meta.get("annotations") or {})}
        if not any(k in annotations for k in _AWAIT_KEYS):
            if kind == "Service":
                annotations.update(SERVICE_AWAIT)
            elif kind == "Ingress":
                annotations.update(INGRESS_AWAIT)
        meta["annotations"] = annotations
        out["metadata"] = meta
        if kind in WORKLOADS:
            out["spec"] = _pod_template(out.get("spec"), self.sha, self.labels)
            if self.asleep and kind in SCALABLE and isinstance(out["spec"], Mapping):
                out["spec"] = {**out["spec"], "replicas": 0}
        return out

    def transform(self, args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        """The Pulumi transform: Kubernetes objects the provider registers pass through :meth:`object`."""
        if not args.custom or not args.type_.startswith("kubernetes:") or "kind" not in args.props:
            return None
        opts = args.opts
        if self.rollout_timeout and args.props.get("kind") in WORKLOADS:
            timeouts = pulumi.CustomTimeouts(create=self.rollout_timeout, update=self.rollout_timeout)
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=timeouts))
        return pulumi.ResourceTransformResult(props=self.object(args.props), opts=opts)


def _pod_template(spec: Any, sha: str, labels: Mapping[str, str]) -> Any:
    """The workload's pod template with the sha annotation (a push rolls the pods) and prenv's labels (so the
    driver finds the PR's pods when it says why an up failed, as for the built-in shape). Selectors are untouched."""
    if not isinstance(spec, Mapping):
        return spec
    template = dict(spec.get("template") or {})
    tmeta = dict(template.get("metadata") or {})
    tmeta["annotations"] = {**(tmeta.get("annotations") or {}), LABEL_SHA: sha}
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
    template["metadata"] = tmeta
    return {**spec, "template": template}


@dataclass(frozen=True)
class Prepared:
    """A checked, placeholder-filled app of kind helm, kustomize or manifests, ready to register.

    ``chart`` and ``directory`` are absolute paths (or, with ``repo``, a chart name); ``values`` is the merge of the
    values files and the inline values; ``objects`` are the manifests' objects (for helm and kustomize, what the
    check rendered).
    """

    kind: str
    guard: Guard
    chart: str | None = None
    repo: str | None = None
    version: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    directory: str | None = None
    objects: tuple[dict[str, Any], ...] = ()


def placeholder_values(cfg: StackConfig, database_secret: str | None) -> dict[str, str]:
    """The placeholders of this stack, from validated values only (never branch, title or author)."""
    t = cfg.template
    values = {
        "pr": str(cfg.pr.pr),
        "sha": cfg.pr.sha,
        "imageTag": cfg.image_tag,
        "imageRepository": t.image.repository,
        "image": f"{t.image.repository}:{cfg.image_tag}",
        "host": cfg.host,
        "url": cfg.url,
        "namespace": cfg.namespace,
    }
    if database_secret is not None:
        values["databaseSecret"] = database_secret
    if t.image.pull_secret:
        values["pullSecret"] = t.image.pull_secret
    return values


def prepare(cfg: StackConfig, project_dir: Path, database_secret: str | None) -> Prepared:
    """Read, check, fill and render-check the app of ``cfg`` (kind helm, kustomize or manifests).

    Relative paths are relative to ``project_dir``. Raises ConfigError naming the key (and the file or object)
    before anything is registered. Rendering goes through the kubernetes provider's invokes, so it needs the
    provider (a pulumi program run, or mocks answering the invokes).
    """
    app = cfg.template.app
    if app.kind not in _KEYS:
        raise ValueError(f"app.kind {app.kind!r} is the built-in shape, not a workload")
    values = placeholder_values(cfg, database_secret)
    guard = Guard(
        namespace=cfg.namespace,
        sha=cfg.pr.sha,
        key=_KEYS[app.kind],
        allow=tuple(app.allow_cluster_scoped),
        fill=values if app.kind == "kustomize" else None,
        rollout_timeout=cfg.template.rollout_timeout,
        asleep=cfg.pr.asleep,
    )
    if app.kind == "helm":
        merged: dict[str, Any] = {}
        for i, name in enumerate(app.values_files):
            key = f"prenv:app.valuesFiles[{i}]"
            doc = _read_yaml(project_dir / name, key)
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ConfigError(key, f"{name} is not a YAML mapping of values")
            merged = _merge(merged, placeholders.fill(doc, values, f"{key} ({name})"))
        merged = _merge(merged, placeholders.fill(app.values, values, "prenv:app.values"))
        chart, repo = str(app.chart), app.repo
        if repo is None:
            path = (project_dir / chart).resolve()
            if not (path / "Chart.yaml").is_file():
                raise ConfigError("prenv:app.chart", f"{chart!r} is not a chart directory (no Chart.yaml in {path})")
            chart = str(path)
        elif repo.startswith("oci://"):
            # Helm names an OCI chart by its full reference; an OCI registry is not a chart repository.
            chart, repo = f"{repo.rstrip('/')}/{chart}", None
        rendered = _render_helm(chart, repo, app.version, cfg.namespace, merged, local=app.repo is None)
        objects = tuple(guard.object(o, normalized=False) for o in rendered)
        return Prepared("helm", guard, chart=chart, repo=repo, version=app.version, values=merged, objects=objects)
    if app.kind == "kustomize":
        directory = (project_dir / str(app.directory)).resolve()
        if not any((directory / n).is_file() for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
            raise ConfigError(
                "prenv:app.directory", f"{app.directory!r} is not a Kustomize directory (no kustomization.yaml)"
            )
        rendered = _render_kustomize(str(directory))
        objects = tuple(guard.object(o, normalized=False) for o in rendered)
        return Prepared("kustomize", guard, directory=str(directory), objects=objects)
    objects = tuple(guard.object(o, normalized=False) for o in _manifests(app.files, project_dir, values))
    return Prepared("manifests", guard, objects=objects)


def _read_yaml(path: Path, key: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(key, f"cannot read {path.name}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(key, f"{path.name} is not YAML: {_first_line(e)}") from None


def _manifests(patterns: Sequence[str], project_dir: Path, values: Mapping[str, str]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, pattern in enumerate(patterns):
        key = f"prenv:app.files[{i}]"
        matches = sorted(glob.glob(pattern, root_dir=project_dir, recursive=True))
        files = [m for m in matches if (project_dir / m).is_file()]
        if not files:
            raise ConfigError(key, f"{pattern!r} matches no file under {project_dir}")
        for name in files:
            if name in seen:
                continue
            seen.add(name)
            try:
                docs = list(yaml.safe_load_all((project_dir / name).read_text()))
            except OSError as e:
                raise ConfigError(key, f"cannot read {name}: {e.strerror or e}") from None
            except yaml.YAMLError as e:
                raise ConfigError(key, f"{name} is not YAML: {_first_line(e)}") from None
            for doc in docs:
                for obj in _expand(doc):
                    if not isinstance(obj, dict) or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
                        raise ConfigError(key, f"{name} holds a document that is not a Kubernetes object")
                    objects.append(placeholders.fill(obj, values, f"{key} ({name})"))
    return objects


def _expand(doc: Any) -> list[Any]:
    if doc is None:
        return []
    if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's rule for values: maps merge key by key, anything else (lists included) is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else v
    return out


def _render_helm(
    chart: str, repo: str | None, version: str | None, namespace: str, values: Mapping[str, Any], *, local: bool
) -> list[dict[str, Any]]:
    opts: dict[str, Any] = {"namespace": namespace, "values": values, "release_name": "prenv-check"}
    if local:
        opts.update(chart=Path(chart).name, path=str(Path(chart).parent))  # the invoke loads <path>/<chart>
    else:
        opts.update(chart=chart, fetch_opts={"repo": repo or "", "version": version})
    return _invoke("kubernetes:helm:template", {"jsonOpts": json.dumps(opts)}, "prenv:app.chart", "render")


def _render_kustomize(directory: str) -> list[dict[str, Any]]:
    return _invoke("kubernetes:kustomize:directory", {"directory": directory}, "prenv:app.directory", "build")


def _invoke(token: str, props: dict[str, Any], key: str, verb: str) -> list[dict[str, Any]]:
    try:
        result = pulumi.runtime.invoke(token, props).value
    except Exception as e:  # the provider's error is the user's template error: say it, naming the key
        raise ConfigError(key, f"does not {verb}: {_first_line(e)}") from None
    objects = (result or {}).get("result")
    if not isinstance(objects, list):
        raise ConfigError(key, f"does not {verb}: the provider returned no objects")
    return [o for o in objects if isinstance(o, dict)]


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:400]


class _Directory(k8s.kustomize.v2.Directory):
    """``kustomize.v2.Directory`` with its ``resources`` output typed as what the provider returns, a list.

    pulumi-kubernetes 4.25's Python SDK types it as a string (pulumi/pulumi-kubernetes#3389, fixed upstream by
    #4295), and resolving the list then fails the program after every object was created. Drop this class when
    requirements.txt moves to a release with the fix.
    """

    @property
    @pulumi.getter
    def resources(self) -> pulumi.Output[Any]:
        return pulumi.get(self, "resources")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PreviewWorkloadArgs:
    prepared: Prepared
    namespace: str
    labels: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the namespace (and the database Secret)


class PreviewWorkload(pulumi.ComponentResource):
    """The app, as the provider renders it, every object through :class:`Guard`."""

    def __init__(self, name: str, args: PreviewWorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:workload:PreviewWorkload", name, None, opts)
        p = args.prepared
        guard = replace(p.guard, labels=dict(args.labels))
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, transforms=[guard.transform])
        if p.kind == "helm":
            k8s.helm.v4.Chart(
                f"{name}-chart",
                chart=str(p.chart),
                version=p.version,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=p.repo) if p.repo else None,
                namespace=args.namespace,
                values=p.values,
                opts=child,
            )
        elif p.kind == "kustomize":
            _Directory(f"{name}-kustomize", directory=str(p.directory), namespace=args.namespace, opts=child)
        else:
            k8s.yaml.v2.ConfigGroup(f"{name}-manifests", objs=list(p.objects), opts=child)
        self.register_outputs({"kind": p.kind})
