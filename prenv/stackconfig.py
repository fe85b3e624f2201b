"""The typed, validated configuration of one preview stack (the ``prenv:`` keys of Pulumi.preview.yaml + PR values).

Both sides use it: the Pulumi program validates its config here before registering any resource, and the driver
validates the template at start-up and hashes the effective config to know when a stack needs an update. It imports
neither pulumi nor the driver, so it sits at the bottom of the layering.

Errors name the key in the form users write it (``prenv:services[0].port``) and say what was expected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from prenv import naming, placeholders
from prenv.errors import ConfigError
from prenv.model import ASLEEP_SUFFIX
from prenv.validation import config_error

NAMESPACE = "prenv"
PR_KEYS = ("pr", "sha", "branch", "author", "imageTag", "slug", "asleep")

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_IMAGE_REPO = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^([1-9][0-9]*)(m|h|d)$")
_ROLLOUT = re.compile(r"^([1-9][0-9]*)(s|m)$")
# Environment variables prenv gives every container; a template cannot set them itself.
RESERVED_ENV = ("DATABASE_URL", "PUBLIC_URL", "PRENV_PR", "PRENV_SHA")

_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?")


def _check_label(v: str) -> str:
    if not _LABEL.fullmatch(v):
        raise ValueError("must be a lower-case DNS label of at most 40 characters starting with a letter")
    return v


def _check_port(v: int | str) -> int | str:
    if isinstance(v, int) and not 1 <= v <= 65535:
        raise ValueError("must be a port number from 1 to 65535 or a port name")
    if isinstance(v, str) and not _PORT_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a port name (IANA_SVC_NAME)")
    return v


Quantity = Annotated[str, Field(pattern=_QUANTITY.pattern)]
# A service name or a host's first part: one DNS label (lower case, at most 40 characters, starting with a letter).
Label = Annotated[str, AfterValidator(_check_label)]
# A Service port a route points at: a number, or the name of one of the Service's ports.
PortRef = Annotated[int | str, AfterValidator(_check_port)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Resources(_Model):
    cpu: Quantity = "100m"
    memory: Quantity = "128Mi"
    cpu_limit: Quantity = Field("500m", alias="cpuLimit")
    memory_limit: Quantity = Field("512Mi", alias="memoryLimit")


class Probe(_Model):
    path: str = Field("/", pattern=r"^/[^\s]*$")
    initial_delay_seconds: int = Field(0, alias="initialDelaySeconds", ge=0, le=600)
    period_seconds: int = Field(10, alias="periodSeconds", ge=1, le=600)


class ServiceSpec(_Model):
    name: Label
    port: int = Field(8080, ge=1, le=65535)
    public: bool = False
    image: str | None = None  # repository override for this service; default is prenv:image.repository
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = {}
    resources: Resources = Field(default_factory=Resources)
    readiness: Probe | None = None
    liveness: Probe | None = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(f"environment variable name {k!r} is not a valid identifier")
            if k in RESERVED_ENV:
                raise ValueError(f"{k} is set by prenv and cannot be overridden")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not _IMAGE_REPO.match(v):
            raise ValueError(f"{v!r} is not an image repository (e.g. registry.example.com/team/app)")
        return v


class Image(_Model):
    repository: str
    tag_prefix: str = Field("pr-", alias="tagPrefix", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    # The name of the docker-registry Secret each PR namespace gets, copied from the shared stack's registry
    # credentials (as the wildcard certificate is); the pods' imagePullSecrets, and {pullSecret} for charts.
    pull_secret: str | None = Field(None, alias="pullSecret", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    # Never: the image is already on the node (imported, as in the embedded cluster), never pulled.
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field("IfNotPresent", alias="pullPolicy")

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not _IMAGE_REPO.match(v):
            raise ValueError(f"{v!r} is not an image repository (e.g. registry.example.com/team/app)")
        return v


class Quota(_Model):
    cpu: Quantity = "2"
    memory: Quantity = "2Gi"
    pods: int = Field(20, ge=1, le=1000)


class Limits(_Model):
    cpu: Quantity = "500m"
    memory: Quantity = "512Mi"
    request_cpu: Quantity = Field("100m", alias="requestCpu")
    request_memory: Quantity = Field("128Mi", alias="requestMemory")


class Ingress(_Model):
    class_name: str = Field("nginx", alias="className")
    controller_namespace: str = Field("ingress-nginx", alias="controllerNamespace")
    annotations: dict[str, str] = {}

    @field_validator("controller_namespace", "class_name")
    @classmethod
    def _label(cls, v: str) -> str:
        if len(v) > naming.DNS_LABEL_MAX or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v):
            raise ValueError(f"{v!r} is not a DNS-1123 label")
        return v


class Tls(_Model):
    """How the preview host gets a certificate.

    - ``wildcard``: copy the shared stack's ``*.<base domain>`` secret into the namespace;
    - ``cert-manager``: annotate the Ingress with ``issuer`` and let cert-manager issue per host;
    - ``controller-default``: TLS on, no secret named: the ingress controller's default certificate;
    - ``none``: plain HTTP (local demos).
    """

    mode: Literal["wildcard", "cert-manager", "controller-default", "none"] = "none"
    issuer: str | None = None
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field("ClusterIssuer", alias="issuerKind")

    @model_validator(mode="after")
    def _issuer_needed(self) -> Tls:
        if self.mode == "cert-manager" and not self.issuer:
            raise ValueError("tls.issuer is required when tls.mode is cert-manager")
        return self


_IMAGE_REF = re.compile(
    _IMAGE_REPO.pattern.rstrip("$") + r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


class Migrate(_Model):
    """A migration Job (``prenv:database.migrate``): runs in the namespace once per sha, after the database branch
    exists and before the app rolls out; the up waits for it, and a failing one leaves the previous rollout serving.

    ``image``: a full image reference (default: the app's ``<repository>:<tag>``); ``command`` (and ``args``) run
    with ``DATABASE_URL``, ``PRENV_PR`` and ``PRENV_SHA`` set; ``timeoutSeconds`` bounds the Job.
    """

    image: str | None = None
    command: list[str] = Field(min_length=1)
    args: list[str] | None = None
    timeout_seconds: int = Field(300, alias="timeoutSeconds", ge=10, le=3600)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not _IMAGE_REF.match(v):
            raise ValueError(f"{v!r} is not an image reference (e.g. registry.example.com/team/migrate:1.2)")
        return v


class Database(_Model):
    enabled: bool = True
    name_prefix: str = Field("pr_", alias="namePrefix")
    template: str | None = None  # seed database to branch from (CREATE DATABASE … TEMPLATE …)
    seed_sql: str | None = Field(None, alias="seedSql")  # SQL run in an empty database when no template
    app_host: str | None = Field(None, alias="appHost")  # host the app uses, when it differs from the admin DSN's
    app_port: int | None = Field(None, alias="appPort", ge=1, le=65535)
    migrate: Migrate | None = None

    @model_validator(mode="after")
    def _migrate_needs_database(self) -> Database:
        if self.migrate is not None and not self.enabled:
            raise ValueError("database.migrate needs database.enabled (it runs against the PR's database)")
        return self

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        naming.check_db_prefix(v)
        return v

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", v):
            raise ValueError(f"{v!r} is not a plain lower-case PostgreSQL identifier")
        return v


class Secrets(_Model):
    source: Literal["none", "aws-secrets-manager"] = "none"
    prefix: str | None = None
    region: str | None = None
    endpoint_url: str | None = Field(None, alias="endpointUrl")

    @model_validator(mode="after")
    def _prefix_needed(self) -> Secrets:
        if self.source == "aws-secrets-manager":
            if not self.prefix:
                raise ValueError("secrets.prefix is required when secrets.source is aws-secrets-manager")
            if "prod" in self.prefix.lower():
                raise ValueError("secrets.prefix must not name production secrets (contains 'prod')")
        return self


class Route(_Model):
    """One public route (``prenv:routes[]``): ``https://<host>-<n>.<baseDomain><path>`` → ``service`` at ``port``.

    ``host`` is the host's first part (default: the service's name); several routes may share a host with different
    paths. Every route gets TLS per ``prenv:tls``; the first route's host is the environment's URL.
    """

    service: Label
    port: PortRef = "http"
    path: str = Field("/", pattern=r"^/[^\s]*$")
    host: Label | None = None


_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_CHART_VERSION = re.compile(r"^[A-Za-z0-9_.+~^<>=*, -]{1,64}$")


class App(_Model):
    """What the app under review is made of (``prenv:app``); every kind gets the same guard rails.

    - ``services`` (default): the built-in shape, one Deployment and Service per ``prenv:services`` entry;
    - ``helm``: ``chart`` (a chart directory, relative to the project, or with ``repo`` a chart name) at ``version``,
      ``valuesFiles`` then inline ``values``, rendered by pulumi-kubernetes (``helm.v4.Chart``);
    - ``kustomize``: ``directory`` (relative to the project), rendered by ``kustomize.v2.Directory``;
    - ``manifests``: ``files`` (paths or globs, relative to the project), applied by ``yaml.v2.ConfigGroup``.

    ``service`` (and ``port``, a name or number) is the rendered Service prenv's Ingress routes the preview URL to;
    without it the app brings its own Ingress (the ``{host}`` placeholder names the preview host). ``host`` is the
    host's first part (``<host>-<n>.<baseDomain>``; default ``service``, else ``app``). Cluster-scoped objects are
    refused unless ``allowClusterScoped`` lists them as ``Kind`` or ``Kind/name``.
    """

    kind: Literal["services", "helm", "kustomize", "manifests"] = "services"
    chart: str | None = None
    repo: str | None = None
    version: str | None = None
    values_files: list[str] = Field(default_factory=list, alias="valuesFiles")
    values: dict[str, Any] = Field(default_factory=dict)
    directory: str | None = None
    files: list[str] = Field(default_factory=list)
    service: Label | None = None
    port: PortRef = "http"
    host: Label | None = None
    allow_cluster_scoped: list[str] = Field(default_factory=list, alias="allowClusterScoped")

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(https?|oci)://[^\s]+", v):
            raise ValueError(f"{v!r} is not a chart repository URL (https://… or oci://…)")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not _CHART_VERSION.match(v):
            raise ValueError(f"{v!r} is not a chart version")
        return v

    @field_validator("values")
    @classmethod
    def _values(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            placeholders.check(v, "")
        except ConfigError as e:
            raise ValueError(f"{str(e).removeprefix(e.key + ': ')} at {e.key.lstrip('.')}") from None
        return v

    @field_validator("allow_cluster_scoped")
    @classmethod
    def _allowed(cls, v: list[str]) -> list[str]:
        for entry in v:
            kind, _, name = entry.partition("/")
            if not _KIND.match(kind) or (name and not re.fullmatch(r"[a-z0-9]([-a-z0-9.:]*[a-z0-9])?", name)):
                raise ValueError(f"{entry!r} is not Kind or Kind/name (e.g. ClusterRole/my-app)")
        return v

    @model_validator(mode="after")
    def _fits_kind(self) -> App:
        needs = {"helm": ("chart",), "kustomize": ("directory",), "manifests": ("files",), "services": ()}
        owned = {
            "chart": "helm",
            "repo": "helm",
            "version": "helm",
            "values_files": "helm",
            "values": "helm",
            "directory": "kustomize",
            "files": "manifests",
        }
        for field in needs[self.kind]:
            if not getattr(self, field):
                raise ValueError(f"app.{_alias(field)} is required when app.kind is {self.kind}")
        for field, kind in owned.items():
            if getattr(self, field) and kind != self.kind:
                raise ValueError(f"app.{_alias(field)} is only for app.kind {kind}, not {self.kind}")
        if self.kind == "services" and (self.service or self.host or self.allow_cluster_scoped):
            raise ValueError("app.service, app.host and app.allowClusterScoped are for helm, kustomize and manifests")
        if self.repo and not self.version:
            raise ValueError("app.version is required with app.repo (a chart from a repository is pinned)")
        return self


def _alias(field: str) -> str:
    return {"values_files": "valuesFiles", "allow_cluster_scoped": "allowClusterScoped"}.get(field, field)


class Template(_Model):
    """The keys of Pulumi.preview.yaml that every PR stack shares."""

    base_domain: str = Field(alias="baseDomain")
    namespace_prefix: str = Field("", alias="namespacePrefix")
    image: Image
    app: App = Field(default_factory=App)  # before services: which kind decides whether services are needed
    routes: list[Route] = Field(default_factory=list)  # before services: routes replace services[].public
    services: list[ServiceSpec] = Field(default_factory=list, validate_default=True)
    quota: Quota = Field(default_factory=Quota)
    limits: Limits = Field(default_factory=Limits)
    ingress: Ingress = Field(default_factory=Ingress)
    tls: Tls = Field(default_factory=Tls)
    ttl: str = "48h"
    # After how long without a push (or a /preview wake) the environment's workloads scale to zero (prenv.sleep);
    # None: never by time.
    sleep_after: str | None = Field(None, alias="sleepAfter")
    # How long an up waits for every Deployment to become available before it fails the environment (a crashing
    # image or a failing readiness probe), instead of pulumi's default 10 minutes. 30s to 30m.
    rollout_timeout: str = Field("3m", alias="rolloutTimeout")
    database: Database = Field(default_factory=Database)
    secrets: Secrets = Field(default_factory=Secrets)
    shared_stack: str | None = Field(None, alias="sharedStack")

    @field_validator("base_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        naming.check_base_domain(v)
        return v

    @field_validator("namespace_prefix")
    @classmethod
    def _ns_prefix(cls, v: str) -> str:
        naming.check_namespace_prefix(v)
        return v

    @field_validator("sleep_after")
    @classmethod
    def _sleep_after(cls, v: str | None) -> str | None:
        if v is not None and not _DURATION.match(v):
            raise ValueError(f"{v!r} is not a duration like 30m, 1h or 2d")
        return v

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: str) -> str:
        if not _DURATION.match(v):
            raise ValueError(f"{v!r} is not a duration like 30m, 48h or 7d")
        return v

    @field_validator("rollout_timeout")
    @classmethod
    def _rollout(cls, v: str) -> str:
        m = _ROLLOUT.match(v)
        seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 1) if m else 0
        if not 30 <= seconds <= 1800:
            raise ValueError(f"{v!r} is not a duration from 30s to 30m, like 90s or 3m")
        return v

    @field_validator("services")
    @classmethod
    def _services(cls, v: list[ServiceSpec], info: ValidationInfo) -> list[ServiceSpec]:
        app = info.data.get("app")
        if app is not None and app.kind != "services":
            return v  # the template's services stay for stacks of the built-in kind; this app brings its own
        if not v:
            raise ValueError("at least one service is required")
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        if info.data.get("routes"):
            if any(s.public for s in v):
                raise ValueError("with prenv:routes, the routes say what is public: drop services[].public")
        elif sum(s.public for s in v) != 1:
            raise ValueError("exactly one service must have public: true (or list them in prenv:routes)")
        return v

    @model_validator(mode="after")
    def _wildcard_needs_shared(self) -> Template:
        if self.tls.mode == "wildcard" and not self.shared_stack:
            raise ValueError("sharedStack is required when tls.mode is wildcard (it holds the wildcard secret)")
        if self.image.pull_secret and not self.shared_stack:
            raise ValueError("sharedStack is required with image.pullSecret (it holds the registry credentials)")
        return self

    @property
    def public_service(self) -> ServiceSpec:
        return next(s for s in self.services if s.public)


class PrValues(_Model):
    """The PR values the driver (or CI) sets on a ``pr-<n>`` stack. Only ``pr`` and ``slug`` feed names.

    ``slug`` is set on a branch environment's ``br-<slug>-<digits>`` stack only (stacks/preview.py takes it from
    the stack name, where ``prenv:slug``, when set, must agree); then ``pr`` is a branch number.
    """

    pr: int
    sha: str
    branch: str = ""
    author: str = ""
    image_tag: str | None = Field(None, alias="imageTag")
    slug: str | None = None
    asleep: bool = False
    """Workloads at zero replicas; namespace, Services, Ingress, database and secrets stay (prenv.sleep)."""

    @field_validator("pr", mode="before")
    @classmethod
    def _pr(cls, v: object) -> int:
        try:
            return naming.check_pr_number(v)
        except ConfigError as e:
            raise ValueError("must be a positive integer (the PR number)") from e

    @field_validator("sha")
    @classmethod
    def _sha(cls, v: str) -> str:
        try:
            return naming.check_sha(v)
        except ConfigError as e:
            raise ValueError("must be a hexadecimal commit sha (7 to 40 characters)") from e

    @field_validator("branch", "author")
    @classmethod
    def _bounded(cls, v: str) -> str:
        return v[:255]

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        if v is not None and not _IMAGE_TAG.match(v):
            raise ValueError(f"{v!r} is not a valid image tag")
        return v

    @field_validator("slug", mode="before")
    @classmethod
    def _slug(cls, v: object, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        try:
            slug = naming.check_slug(v)
        except ConfigError as e:
            raise ValueError(
                f"must be a branch slug: a-z and 0-9 runs joined by single '-', ≤ {naming.SLUG_MAX}"
            ) from e
        pr = info.data.get("pr")  # validated before: declared first
        if pr is not None and not naming.is_branch_number(pr):
            raise ValueError(f"is set but prenv:pr {pr} is not a branch environment's number")
        return slug


@dataclass(frozen=True)
class PublicRoute:
    """A route resolved for one PR: the full host, the Service and port it reaches, the path."""

    host: str
    service: str
    port: int | str
    path: str


class StackConfig(_Model):
    """Everything one preview stack is built from."""

    template: Template
    pr: PrValues

    @property
    def stack(self) -> str:
        return naming.stack_name(self.pr.pr, self.pr.slug)

    @property
    def namespace(self) -> str:
        return naming.namespace(self.pr.pr, self.template.namespace_prefix, self.pr.slug)

    @property
    def image_tag(self) -> str:
        return self.pr.image_tag or f"{self.template.image.tag_prefix}{self.pr.pr}"

    @property
    def routes(self) -> list[PublicRoute]:
        """The environment's public routes, first one first: ``prenv:routes``, else the public service (built-in
        shape) or ``app.service``; none when a team's own app brings its own Ingress."""
        t, app = self.template, self.template.app
        if t.routes:
            wanted = [(r.host or r.service, r.service, r.port, r.path) for r in t.routes]
        elif app.kind == "services":
            wanted = [(t.public_service.name, t.public_service.name, "http", "/")]
        elif app.service:
            wanted = [(app.host or app.service, app.service, app.port, "/")]
        else:
            wanted = []
        return [
            PublicRoute(naming.host(label, self.pr.pr, t.base_domain, self.pr.slug), service, port, path)
            for label, service, port, path in wanted
        ]

    @property
    def host(self) -> str:
        """The first route's host (the environment's URL), or ``<app.host or app>-<n>.<baseDomain>`` without one."""
        routes = self.routes
        if routes:
            return routes[0].host
        return naming.host(self.template.app.host or "app", self.pr.pr, self.template.base_domain, self.pr.slug)

    @property
    def url(self) -> str:
        scheme = "http" if self.template.tls.mode == "none" else "https"
        return f"{scheme}://{self.host}"

    @property
    def database_name(self) -> str:
        return naming.database(self.pr.pr, self.template.database.name_prefix)


_MODELS: tuple[type[BaseModel], ...] = (
    Resources,
    Probe,
    ServiceSpec,
    Image,
    Quota,
    Limits,
    Ingress,
    Tls,
    Migrate,
    Database,
    Secrets,
    Route,
    App,
    Template,
    PrValues,
)


_ALIASES = {name: (f.alias or name) for m in _MODELS for name, f in m.model_fields.items()}


def _validate(model: type[_Model], data: Mapping[str, Any], prefix: str) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        raise config_error(e, prefix=prefix, aliases=_ALIASES) from None


def load_template(raw: Mapping[str, Any]) -> Template:
    """Validate the ``prenv:`` keys of a template (with the ``prenv:`` namespace already stripped)."""
    data = {k: v for k, v in raw.items() if k not in PR_KEYS and k != "databaseAdminDsn"}
    template: Template = _validate(Template, data, f"{NAMESPACE}:")
    _check_routes(template)
    return template


def _check_routes(t: Template) -> None:
    """What one key cannot check alone: a route names a configured service; routes or app.service, not both."""
    if not t.routes:
        return
    if t.app.kind == "services":
        names = {s.name for s in t.services}
        for i, r in enumerate(t.routes):
            if r.service not in names:
                raise ConfigError(f"{NAMESPACE}:routes[{i}].service", f"{r.service!r} is not one of prenv:services")
    elif t.app.service:
        raise ConfigError(f"{NAMESPACE}:app.service", "prenv:routes is set: list this service there instead")
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(t.routes):
        key = (r.host or r.service, r.path)
        if key in seen:
            raise ConfigError(f"{NAMESPACE}:routes[{i}]", f"host {key[0]!r} and path {r.path!r} are routed twice")
        seen.add(key)


def load(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a whole stack config: template keys plus PR values. Raises ConfigError naming the key."""
    template = load_template(raw)
    pr_raw = {k: raw[k] for k in PR_KEYS if k in raw and raw[k] is not None}
    pr = _validate(PrValues, pr_raw, f"{NAMESPACE}:")
    return StackConfig(template=template, pr=pr)


def template_hash(template: Template, image_tag: str | None = None, app_files: str | None = None) -> str:
    """A stable hash of the effective template config (and an explicit image tag, when the PR sets one).

    Together with the sha it decides whether a stack needs an update: the program exports it as ``configHash`` and
    the driver compares it with the hash of the current template. ``app_files`` is the digest of the files a team's
    own app is read from (``prenv.template.app_files_digest``), so editing a chart in place updates every PR too.
    """
    data: dict[str, Any] = {"template": template.model_dump(mode="json", by_alias=True), "imageTag": image_tag}
    if app_files is not None:
        data["appFiles"] = app_files
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sleep_hash(config_hash: str, asleep: bool) -> str:
    """The config hash a stack records: a sleeping environment's carries a suffix (prenv.model.ASLEEP_SUFFIX), so the
    reconciler sees sleeping as a desired state: a change of it is an update, an unchanged sleeping PR no run."""
    return f"{config_hash}{ASLEEP_SUFFIX}" if asleep else config_hash
