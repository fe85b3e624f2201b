"""The ingress status publisher's decisions, against a recorded fake of the networking API."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from prenv.cluster.ingress_publisher import Publisher, ingress_class_of, is_ours


def _ingress(
    name: str = "web",
    *,
    class_name: str | None = "nginx",
    annotation: str | None = None,
    lb: list[client.V1IngressLoadBalancerIngress] | None = None,
) -> client.V1Ingress:
    return client.V1Ingress(
        metadata=client.V1ObjectMeta(
            name=name, namespace="pr-1", annotations={"kubernetes.io/ingress.class": annotation} if annotation else None
        ),
        spec=client.V1IngressSpec(ingress_class_name=class_name),
        status=client.V1IngressStatus(load_balancer=client.V1IngressLoadBalancerStatus(ingress=lb)),
    )


class FakeNetworking:
    """Just the calls the publisher makes."""

    def __init__(self, items: list[client.V1Ingress], default: bool = True, missing: set[str] | None = None) -> None:
        self.items = items
        self.default = default
        self.missing = missing or set()
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def read_ingress_class(self, name: str) -> client.V1IngressClass:
        annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if self.default else {}
        return client.V1IngressClass(metadata=client.V1ObjectMeta(name=name, annotations=annotations))

    def list_ingress_for_all_namespaces(self, **_: Any) -> client.V1IngressList:
        return client.V1IngressList(items=self.items, metadata=client.V1ListMeta(resource_version="42"))

    def patch_namespaced_ingress_status(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        if name in self.missing:
            raise ApiException(status=404, reason="Not Found")
        self.patches.append((namespace, name, body))


def _publisher(fake: FakeNetworking) -> Publisher:
    return Publisher(fake, class_name="nginx", ip="127.0.0.1", resync=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ingress", "default", "ours"),
    [
        (_ingress(class_name="nginx"), False, True),
        (_ingress(class_name="traefik"), True, False),
        (_ingress(class_name=None, annotation="nginx"), False, True),
        (_ingress(class_name=None), True, True),
        (_ingress(class_name=None), False, False),
    ],
    ids=["spec-class", "other-class", "legacy-annotation", "class-less-with-default", "class-less-no-default"],
)
def test_which_ingresses_belong_to_the_class(ingress: client.V1Ingress, default: bool, ours: bool) -> None:
    assert is_ours(ingress, "nginx", default) is ours


def test_spec_class_wins_over_the_legacy_annotation() -> None:
    assert ingress_class_of(_ingress(class_name="nginx", annotation="traefik")) == "nginx"


def test_relist_publishes_the_ip_on_ingresses_of_the_class_only() -> None:
    fake = FakeNetworking([_ingress("a"), _ingress("b", class_name="traefik")])
    assert _publisher(fake).relist() == "42"
    assert fake.patches == [("pr-1", "a", {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}})]


def test_an_ingress_that_already_has_the_status_is_not_patched_again() -> None:
    done = _ingress(lb=[client.V1IngressLoadBalancerIngress(ip="127.0.0.1")])
    fake = FakeNetworking([done])
    _publisher(fake).relist()
    assert fake.patches == []


def test_a_foreign_status_is_replaced() -> None:
    other = _ingress(lb=[client.V1IngressLoadBalancerIngress(hostname="lb.example")])
    fake = FakeNetworking([other])
    _publisher(fake).relist()
    assert len(fake.patches) == 1


def test_an_ingress_deleted_before_its_patch_is_skipped() -> None:
    fake = FakeNetworking([_ingress("gone"), _ingress("kept")], missing={"gone"})
    _publisher(fake).relist()
    assert [name for _, name, _ in fake.patches] == ["kept"]


def test_class_less_ingresses_are_left_alone_when_the_class_is_not_default() -> None:
    fake = FakeNetworking([_ingress(class_name=None)], default=False)
    _publisher(fake).relist()
    assert fake.patches == []
