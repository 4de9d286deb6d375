"""The workloads: what each workflow gets as input and what it must return.

The three workers register the same workflow and activity type names (`echo`, `fanout`;
activities `echo`, `http.call`) with the same inputs and outputs, so the driver is identical
for all of them. Each run checks every result, so a worker that returns the wrong thing fails.
W3 runs edgeflow's own `order` workflow, which has no peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# The stub service's name in every worker's settings (`[services.bench_stub]` in edgeflow).
STUB_SERVICE = "bench_stub"


@dataclass(frozen=True)
class Workload:
    key: str
    name: str
    workflow: str
    n_full: int
    n_quick: int
    activities_per_workflow: int
    make_input: Callable[[int], Any]
    check: Callable[[int, Any], str | None]  # None when the result is right, else why not
    needs_stub: bool = False
    # W3: a PostgreSQL cluster, the dev stack's demo services, and the stub as webhook receiver.
    needs_order_stack: bool = False
    workers: tuple[str, ...] = ("edgeflow", "python", "typescript")
    blurb: str = ""
    notes: list[str] = field(default_factory=list)


def _echo_input(i: int) -> dict:
    return {"message": {"i": i, "text": "bench"}, "delay_ms": 0}


def _echo_check(i: int, result: Any) -> str | None:
    return None if result == {"i": i, "text": "bench"} else f"expected the message back, got {result!r}"


def _fanout_input(i: int) -> dict:
    return {"service": STUB_SERVICE, "path": f"/fanout/{i}"}


def _fanout_check(i: int, result: Any) -> str | None:
    expected = {"fetched": [{"ok": True, "part": str(n)} for n in (1, 2, 3)]}
    return None if result == expected else f"expected {expected!r}, got {result!r}"


W1 = Workload(
    key="w1",
    name="noop",
    workflow="echo",
    n_full=2000,
    n_quick=20,
    activities_per_workflow=1,
    make_input=_echo_input,
    check=_echo_check,
    blurb="each workflow runs one activity that returns its input",
)

W2 = Workload(
    key="w2",
    name="io-fanout",
    workflow="fanout",
    n_full=500,
    n_quick=10,
    activities_per_workflow=4,
    make_input=_fanout_input,
    check=_fanout_check,
    needs_stub=True,
    blurb="three parallel HTTP GETs to a local stub (20 ms answer), then one final activity; "
    "edgeflow's calls go through its real `http` activity family",
)


def _order_input(i: int) -> dict:
    return {
        "order_id": f"bench-{i}",
        "customer_email": "bench@example.com",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 100}],
        "amount_cents": 100,
        "currency": "EUR",
    }


def _order_check(i: int, result: Any) -> str | None:
    ok = (isinstance(result, dict) and result.get("order_id") == f"bench-{i}"
          and result.get("status") == "completed" and len(result.get("jobs", {})) == 3)
    return None if ok else f"expected order bench-{i} completed with three jobs, got {result!r}"


W3 = Workload(
    key="w3",
    name="order",
    workflow="order",
    n_full=200,
    n_quick=5,
    activities_per_workflow=6,  # db.execute, email.send, 3 × http.call, webhook.notify (+1 local)
    make_input=_order_input,
    check=_order_check,
    needs_order_stack=True,
    workers=("edgeflow",),
    blurb="the flagship `order` (under the approval threshold) with its real activities: the order row "
    "into PostgreSQL, the confirmation email into the outbox, three jobs against the dev stack's demo "
    "services, the signed completion webhook to a local receiver; edgeflow only (no peer has it)",
)

WORKLOADS = {w.key: w for w in (W1, W2, W3)}
