"""10,000 generated webhook deliveries: none accepted without a valid signature, no 5xx, and bounded memory.

tests/unit/test_service_webhook_fuzz.py already searches the input space with hypothesis; this check adds the
figures and the memory bound. Deliveries come from a seeded generator (random bytes, random JSON, real payloads
with mutations, oversized bodies; missing, garbage, wrong-key, wrong-algorithm and other-body signatures; random
event and delivery headers), with one in ten correctly signed so that the accepting paths run too. Python heap
growth (tracemalloc) between a warm-up and the end must stay under a generous bound: what a flood of deliveries
may retain is the bounded delivery log, nothing per request. Allocations made by logging and by pytest (which keeps
every captured log record of a test for its report) are left out of the growth: they are the harness's, not prenv's.

Stand-ins: FakeGateway (stacks in memory, no pulumi run) and FakeSource (PRs in memory). Not end-to-end.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import os
import random
import tracemalloc
from pathlib import Path

import pytest

from prenv.service.app import create_app
from prenv.service.webhooks import sign
from tests.reliability import harness
from tests.reliability.exposure import COLLECTOR
from testsupport.service_harness import SECRET, TestClient, encode, for_pr, make_service, payload

pytestmark = [pytest.mark.reliability, pytest.mark.chaos]

SEED = int(os.environ.get("PRENV_CHAOS_SEED", "20261201"))
DELIVERIES = 10_000
WARM_UP = 1_000
MAX_BODY = 64 * 1024  # real pull_request payloads are about 28 KiB
GROWTH_BOUND = 16 * 2**20  # retained heap after 9,000 more deliveries; the delivery log alone is well under 2 MiB
PEAK_BOUND = 128 * 2**20
EVENTS = ["pull_request", "ping", "push", "issues", "", "PULL_REQUEST", "pull_request\x00", "é" * 40]
PAYLOADS = ["opened", "closed", "synchronize", "labeled", "reopened", "ping", "push", "opened-null-body"]


def _text(rng: random.Random, size: int) -> str:
    return "".join(chr(rng.randint(0x20, 0xFF)) for _ in range(size)).replace("\x7f", " ")


def _json(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(6 if depth < 4 else 3)
    if pick == 0:
        return rng.choice([None, True, False, 0, -1, 2**63, 1.5e308])
    if pick == 1:
        return rng.randint(-(2**40), 2**40)
    if pick == 2:
        return _text(rng, rng.randrange(40))
    if pick == 3:
        return [_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {_text(rng, rng.randrange(12)): _json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _mutated(rng: random.Random) -> bytes:
    data = (
        for_pr(rng.choice(PAYLOADS[:5]), rng.randint(1, 2**31)) if rng.random() < 0.7 else payload(rng.choice(PAYLOADS))
    )
    if rng.random() < 0.5 and isinstance(data, dict):
        key = rng.choice(list(data))
        data[key] = _json(rng)
    return encode(data)


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(2048))
    if kind == 1:
        return json.dumps(_json(rng)).encode()
    if kind in (2, 3):
        return _mutated(rng)
    if kind == 4:
        return rng.randbytes(rng.randint(MAX_BODY + 1, 4 * MAX_BODY))  # oversized
    return b""


def _signature(rng: random.Random, body: bytes) -> tuple[str | None, bool]:
    """A signature header value and whether it is the valid one."""
    kind = rng.randrange(10)
    if kind == 0:
        return sign(SECRET, body), True
    if kind == 1:
        return None, False
    if kind == 2:
        return _text(rng, rng.randrange(80)), False
    if kind == 3:
        return sign(b"not-the-secret", body), False
    if kind == 4:
        return "sha256=" + rng.randbytes(32).hex(), False
    if kind == 5:
        return sign(SECRET, body + b" "), False  # signed, but another body
    if kind == 6:
        return "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest(), False
    if kind == 7:
        return sign(SECRET, body)[:-1], False  # truncated
    if kind == 8:
        return "sha256=", False
    return sign(SECRET, body).replace("sha256=", "sha256= "), False


_HARNESS = [
    tracemalloc.Filter(False, pattern)
    for pattern in ("*/logging/__init__.py", "*/_pytest/*", "*/tests/reliability/*", tracemalloc.__file__)
]


def _heap() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(_HARNESS)


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ten_thousand_generated_deliveries_accept_none_unsigned_never_crash_and_stay_in_bounded_memory() -> None:
    rng = random.Random(SEED)
    service = make_service(max_body_bytes=MAX_BODY)
    statuses: dict[int, int] = {}
    accepted_unsigned = crashes = queued_unsigned = 0
    valid_sent = 0
    rss_before = 0
    baseline: tracemalloc.Snapshot | None = None
    tracemalloc.start()
    try:
        with TestClient(create_app(service, manage_lifecycle=False), raise_server_exceptions=False) as client:
            for i in range(DELIVERIES):
                if i % 500 == 0:
                    COLLECTOR.scan()  # the scan keeps only leaks, so the texts it holds do not count as growth
                if i == WARM_UP:
                    baseline = _heap()
                    rss_before = _rss()
                body = _body(rng)
                signature, valid = _signature(rng, body)
                valid_sent += valid
                headers: dict[str, bytes] = {}
                if signature is not None:
                    headers["X-Hub-Signature-256"] = signature.encode("latin-1")
                if rng.random() < 0.9:
                    headers["X-GitHub-Event"] = rng.choice(EVENTS).encode("latin-1")
                if rng.random() < 0.8:
                    headers["X-GitHub-Delivery"] = (
                        str(rng.getrandbits(64)) if rng.random() < 0.8 else _text(rng, rng.randrange(60))
                    ).encode("latin-1")
                before = service.queue.depth()
                response = client.post("/webhooks/github", content=body, headers=headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    crashes += 1
                if not valid:
                    accepted_unsigned += response.status_code not in (400, 401, 413)
                    queued_unsigned += service.queue.depth() != before
        COLLECTOR.scan()
        assert baseline is not None
        growth = sum(stat.size_diff for stat in _heap().compare_to(baseline, "filename"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss_growth = _rss() - rss_before

    accepted_any = statuses.get(202, 0) + statuses.get(200, 0)
    processes = harness.leftover_processes()
    failures = (
        accepted_unsigned
        + crashes
        + queued_unsigned
        + (growth >= GROWTH_BOUND)
        + (peak >= PEAK_BOUND)
        + (accepted_any == 0)
        + len(processes)
    )
    harness.record(
        "webhook-abuse",
        "Webhook abuse: generated bodies and headers (1 in 10 validly signed), against the service's real HTTP app "
        "over a fake gateway and source (not the real gateway: nothing is deployed)",
        trials=DELIVERIES,
        failures=failures,
        orphans=None,
        orphans_note="fake gateway: nothing is deployed",
        pending=None,
        pending_note="fake gateway: no checkpoint",
        processes=len(processes),
        order=40,
        unit="deliveries",
        seed=SEED,
        accepted_without_valid_signature=accepted_unsigned,
        queued_without_valid_signature=queued_unsigned,
        server_errors=crashes,
        validly_signed=valid_sent,
        statuses={str(k): v for k, v in sorted(statuses.items())},
        heap_growth_kib=growth // 1024,
        heap_peak_kib=peak // 1024,
        rss_growth_kib=rss_growth // 1024,
        heap_growth_bound_kib=GROWTH_BOUND // 1024,
    )

    assert accepted_unsigned == 0
    assert queued_unsigned == 0
    assert crashes == 0, statuses
    assert growth < GROWTH_BOUND, f"heap grew by {growth // 1024} KiB over {DELIVERIES - WARM_UP} deliveries"
    assert peak < PEAK_BOUND
    assert accepted_any > 0, "the validly signed deliveries were accepted"
    assert not processes, processes
