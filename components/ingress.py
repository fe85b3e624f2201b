"""PreviewIngress: the reviewer's URL, ``<app>-<n>.<base domain>`` (and any further routes, ``prenv:routes``: hosts
and paths, each to a Service), with TLS for every host in one of four modes.

- ``wildcard``: the shared stack's ``*.<base domain>`` certificate is copied into the namespace (as a Pulumi secret),
  because an Ingress can only reference a Secret in its own namespace;
- ``cert-manager``: the issuer annotation makes cert-manager issue a certificate for this host;
- ``controller-default``: TLS without a secret name: the ingress controller serves its default certificate;
- ``none``: plain HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.meta import INGRESS_AWAIT, metadata

WILDCARD_SECRET = "prenv-wildcard-tls"  # noqa: S105 - a Secret object name


@dataclass(frozen=True)
class Route:
    """One route of the Ingress: ``host`` + ``path`` (a prefix) → Service ``service`` at ``port``."""

    host: str
    service: str
    port: int | str
    path: str


@dataclass(frozen=True)
class PreviewIngressArgs:
    namespace: pulumi.Input[str]
    host: str
    service: str
    class_name: str
    tls_mode: str
    labels: dict[str, str]
    port: int | str = "http"  # the Service's port, by name or number
    routes: list[Route] | None = None  # several routes (hosts and paths); default: host → service at port, path /
    annotations: dict[str, str] = field(default_factory=dict)
    issuer: str | None = None
    issuer_kind: str = "ClusterIssuer"
    wildcard_cert: pulumi.Input[str] | None = None  # PEM, from the shared stack
    wildcard_key: pulumi.Input[str] | None = None  # PEM, secret, from the shared stack


class PreviewIngress(pulumi.ComponentResource):
    host: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:ingress:PreviewIngress", name, None, opts)
        routes = list(args.routes) if args.routes else [Route(args.host, args.service, args.port, "/")]
        hosts = list(dict.fromkeys(r.host for r in routes))  # in order, once each
        annotations = {**INGRESS_AWAIT, **args.annotations}
        tls: list[k8s.networking.v1.IngressTLSArgs] = []
        depends: list[pulumi.Resource] = []
        if args.tls_mode == "wildcard":
            if args.wildcard_cert is None or args.wildcard_key is None:
                raise ValueError("tls.mode wildcard needs the shared stack's certificate and key")
            secret = k8s.core.v1.Secret(
                f"{name}-tls",
                metadata=metadata(WILDCARD_SECRET, args.namespace, args.labels),
                type="kubernetes.io/tls",
                string_data={
                    "tls.crt": pulumi.Output.secret(args.wildcard_cert),
                    "tls.key": pulumi.Output.secret(args.wildcard_key),
                },
                opts=pulumi.ResourceOptions(parent=self),
            )
            depends.append(secret)
            tls.append(k8s.networking.v1.IngressTLSArgs(hosts=hosts, secret_name=WILDCARD_SECRET))
        elif args.tls_mode == "cert-manager":
            key = "cert-manager.io/cluster-issuer" if args.issuer_kind == "ClusterIssuer" else "cert-manager.io/issuer"
            annotations[key] = str(args.issuer)
            tls.append(k8s.networking.v1.IngressTLSArgs(hosts=hosts, secret_name=f"{args.service}-tls"))
        elif args.tls_mode == "controller-default":
            tls.append(k8s.networking.v1.IngressTLSArgs(hosts=hosts))
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=metadata(args.service, args.namespace, args.labels, annotations),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.class_name,
                tls=tls or None,
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[_path(r) for r in routes if r.host == host]
                        ),
                    )
                    for host in hosts
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.host = pulumi.Output.from_input(args.host)
        self.register_outputs({"host": self.host})


def _path(route: Route) -> k8s.networking.v1.HTTPIngressPathArgs:
    return k8s.networking.v1.HTTPIngressPathArgs(
        path=route.path,
        path_type="Prefix",
        backend=k8s.networking.v1.IngressBackendArgs(
            service=k8s.networking.v1.IngressServiceBackendArgs(name=route.service, port=_port(route.port))
        ),
    )


def _port(port: int | str) -> k8s.networking.v1.ServiceBackendPortArgs:
    if isinstance(port, int):
        return k8s.networking.v1.ServiceBackendPortArgs(number=port)
    return k8s.networking.v1.ServiceBackendPortArgs(name=port)
