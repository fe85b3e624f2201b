"""Traefik, the embedded cluster's ingress controller, really serves: HTTPS with the wildcard certificate signed by
the cluster's CA, routing by Host to a Service's endpoints, and HTTP on its other entryPoint.

No request ever goes to a pod IP: KWOK's pods have made-up addresses that are not on this machine. The backend
is a tiny HTTP server this test starts on an address of this machine, behind a selector-less Service whose
EndpointSlice the test writes itself (a controller-managed slice would list KWOK's pod IPs).
"""

from __future__ import annotations

import base64
import http.server
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from prenv import procs
from prenv.cluster import ClusterInfo, EmbeddedCluster, pki
from tests.integration.test_cluster import eventually

pytestmark = pytest.mark.integration

BASE_DOMAIN = "preview.test"


def local_address() -> str:
    """A non-loopback IPv4 address of this machine. The apiserver refuses loopback addresses in EndpointSlices;
    traffic to one of the machine's own addresses never leaves it. (Connecting a UDP socket sends nothing.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        address = str(s.getsockname()[0])
    assert not address.startswith("127."), "this machine has no non-loopback IPv4 address"
    return address


@pytest.fixture
def backend() -> Iterator[tuple[str, int]]:
    """An HTTP server on this machine answering every GET with its Host header and path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"backend saw host={self.headers['Host']} path={self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((local_address(), 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[0]), int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _service_with_endpoints(api: client.ApiClient, namespace: str, name: str, address: str, port: int) -> None:
    client.CoreV1Api(api).create_namespaced_service(
        namespace, {"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}]}}
    )
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(
        namespace,
        {
            "metadata": {"name": f"{name}-manual", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True, "serving": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    )


def _ingress(name: str, host: str, *, tls_secret: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": name, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {"metadata": {"name": name}, "spec": spec}


def _tls_secret(api: client.ApiClient, namespace: str, pair: pki.KeyPair) -> str:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "wildcard-tls"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(pair.cert_pem()), "tls.key": b64(pair.key_pem())},
        },
    )
    return "wildcard-tls"


def _request(port: int, host: str, *, context: ssl.SSLContext | None) -> tuple[int, str, dict[str, Any] | None]:
    """GET / from 127.0.0.1:port with ``Host: host`` (and SNI ``host`` over TLS): status, body, peer certificate."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        sock: socket.socket = context.wrap_socket(raw, server_hostname=host) if context else raw
        sock.sendall(f"GET /hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        peer = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    head, _, body = b"".join(chunks).decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body, peer


def _ok_or_none(port: int, host: str, context: ssl.SSLContext) -> tuple[int, str, dict[str, Any] | None] | None:
    """The answer once it is a 200; None while Traefik has not loaded the route or the Secret yet (404, or its
    own self-signed default certificate, which the CA does not verify)."""
    try:
        answer = _request(port, host, context=context)
    except ssl.SSLCertVerificationError:
        return None
    return answer if answer[0] == 200 else None


def _published(api: client.ApiClient, namespace: str, name: str) -> list[tuple[str | None, str | None]]:
    status = client.NetworkingV1Api(api).read_namespaced_ingress(name, namespace).status
    return [(a.ip, a.hostname) for a in status.load_balancer.ingress or []]


def test_https_through_traefik_presents_the_wildcard_certificate_and_reaches_the_backend(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str, backend: tuple[str, int]
) -> None:
    pair = EmbeddedCluster(cluster.name).wildcard_certificate(BASE_DOMAIN)
    host = f"web-{uuid.uuid4().int % 100_000}.{BASE_DOMAIN}"
    secret = _tls_secret(cluster_api, cluster_namespace, pair)
    _service_with_endpoints(cluster_api, cluster_namespace, "web", *backend)
    client.NetworkingV1Api(cluster_api).create_namespaced_ingress(
        cluster_namespace, _ingress("web", host, tls_secret=secret)
    )

    eventually("Traefik publishes the Ingress's status", lambda: _published(cluster_api, cluster_namespace, "web"))
    assert _published(cluster_api, cluster_namespace, "web") == [("127.0.0.1", None)]

    # Trust only the cluster's CA: the handshake verifies the chain and that the SAN covers the host.
    context = ssl.create_default_context(cafile=str(cluster.ca))
    _, body, peer = eventually(
        "Traefik routes the host over HTTPS with the Ingress's certificate",
        lambda: (r := _ok_or_none(cluster.ingress.https, host, context)) is not None and r,
    )
    assert body == f"backend saw host={host} path=/hello\n"
    assert peer is not None and ("DNS", f"*.{BASE_DOMAIN}") in peer["subjectAltName"]
    issuer = dict(item for rdn in peer["issuer"] for item in rdn)
    assert issuer["commonName"] == f"prenv local CA ({cluster.name})"

    # Another CA's trust store refuses it: the chain really is the cluster's own.
    with pytest.raises(ssl.SSLCertVerificationError):
        _request(cluster.ingress.https, host, context=ssl.create_default_context())


def test_http_serves_an_ingress_without_tls_and_an_unknown_host_gets_404(
    cluster: ClusterInfo, cluster_api: client.ApiClient, cluster_namespace: str, backend: tuple[str, int]
) -> None:
    host = f"plain-{uuid.uuid4().int % 100_000}.{BASE_DOMAIN}"
    _service_with_endpoints(cluster_api, cluster_namespace, "plain", *backend)
    client.NetworkingV1Api(cluster_api).create_namespaced_ingress(
        cluster_namespace, _ingress("plain", host, tls_secret=None)
    )
    _, body, _ = eventually(
        "Traefik routes the host over HTTP",
        lambda: (r := _request(cluster.ingress.http, host, context=None))[0] == 200 and r,
    )
    assert body == f"backend saw host={host} path=/hello\n"
    assert _request(cluster.ingress.http, f"nobody.{BASE_DOMAIN}", context=None)[0] == 404


def test_traefik_listens_on_loopback_only(cluster: ClusterInfo) -> None:
    ports = {cluster.ingress.http, cluster.ingress.https}
    assert procs.listening_ports(ports) == ports
    with pytest.raises(OSError), socket.create_connection((local_address(), cluster.ingress.https), timeout=2):
        pass
