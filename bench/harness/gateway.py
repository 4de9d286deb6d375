"""Workload G: what `edgeflow gateway` adds to a start, and what it costs.

Starts a Temporal dev server (in memory) and `edgeflow gateway` in front of it on loopback, with
an ES256 key made for the run (the gateway reads its public half as a JWKS file). Then makes N
starts through the gateway and N direct starts on Temporal's HTTP API, interleaved and sequential,
each over a kept-alive HTTP/1.1 connection, with the same body the edge sends (the gateway's with
a token minted just before, outside the timed part). Records p50/p99 of each and their difference
(`added_ms`), the gateway's CPU per request (utime + stime over the gateway's requests, its
readiness probe switched off) and its RSS (VmHWM, VmRSS at the end). Then N requests the gateway
answers itself after verifying the token (a namespace it does not serve: 404), which split its own
cost (HTTP, token) from the call to Temporal (`refused_ms`, `refused_cpu_ms_per_request`). A third
start is interleaved with the first two: the same request as a gRPC call from the Python SDK's
client (`grpc_ms`), since the gateway reaches Temporal by gRPC and Temporal's two doors do not
answer equally fast.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from temporalio.api.common.v1 import Memo, Payload, Payloads, SearchAttributes, WorkflowType
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy, WorkflowIdReusePolicy
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .procs import Proc, cpu_seconds, free_port, status_kib
from .servers import ROOT, start_dev_server

AUDIENCE, ISSUER, QUEUE = "bench-gateway", "bench-edge", "bench-gateway"
NO_SHORTHAND = "application/json+no-payload-shorthand"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class EdgeKey:
    """The edge's signing key, minting tokens as the edge Worker does."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "bench-1"

    def jwks(self) -> dict[str, Any]:
        nums = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                          "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))}]}

    def token(self, method: str, path: str, body: bytes) -> str:
        """A token bound to one request: method, path and query, SHA-256 of the body."""
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "rid": uuid.uuid4().hex,
                  "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60, "htm": method, "htu": path,
                  "bsh": b64url(hashlib.sha256(body).digest())}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def payload(value: Any) -> dict[str, Any]:
    return {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(json.dumps(value).encode()).decode()}


def start_body(workflow_id: str) -> bytes:
    """The start the edge sends (its temporal.ts), for the flagship `order`."""
    order = {"order_id": workflow_id, "customer_email": "bench@example.com", "customer_name": "Bench",
             "items": [{"sku": "a", "name": "A", "quantity": 1, "unit_price_cents": 100}],
             "amount_cents": 100, "currency": "EUR"}
    return json.dumps({
        "workflowId": workflow_id, "workflowType": {"name": "order"}, "taskQueue": {"name": QUEUE},
        "input": {"payloads": [payload(order)]}, "identity": "edge:bench", "requestId": str(uuid.uuid4()),
        "workflowIdReusePolicy": "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
        "workflowIdConflictPolicy": "WORKFLOW_ID_CONFLICT_POLICY_FAIL",
        "memo": {"fields": {"edge_subject": payload("bench"), "edge_request_id": payload("r")}},
        "searchAttributes": {"indexedFields": {"EdgeSubject": payload("bench"), "EdgeRequestId": payload("r")}},
        "header": {"fields": {}},
    }).encode()


def grpc_request(workflow_id: str) -> StartWorkflowExecutionRequest:
    """The start of `start_body`, as a gRPC request."""
    body = json.loads(start_body(workflow_id))

    def pb(p: dict[str, Any]) -> Payload:
        return Payload(metadata={k: base64.b64decode(v) for k, v in p["metadata"].items()},
                       data=base64.b64decode(p["data"]))

    return StartWorkflowExecutionRequest(
        namespace="default", workflow_id=workflow_id, workflow_type=WorkflowType(name="order"),
        task_queue=TaskQueue(name=QUEUE), input=Payloads(payloads=[pb(p) for p in body["input"]["payloads"]]),
        identity="edge:bench", request_id=body["requestId"],
        workflow_id_reuse_policy=WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
        workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
        memo=Memo(fields={k: pb(v) for k, v in body["memo"]["fields"].items()}),
        search_attributes=SearchAttributes(indexed_fields={k: pb(v) for k, v in body["searchAttributes"]["indexedFields"].items()}),
    )


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


REFUSED_PATH = "/api/v1/namespaces/not-served/workflows/x"


def timed_refusal(conn: http.client.HTTPConnection, token: str) -> float:
    headers = {"Accept": NO_SHORTHAND, "Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    conn.request("GET", REFUSED_PATH, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    took = (time.perf_counter() - t0) * 1000
    if resp.status != 404:
        raise RuntimeError(f"refusal: {resp.status} {data[:300]!r}")
    return took


def timed_start(conn: http.client.HTTPConnection, workflow_id: str, key: EdgeKey | None) -> float:
    """One start, timed from sending to the answer; the token (if any) is minted before."""
    headers = {"Content-Type": "application/json", "Accept": NO_SHORTHAND}
    body = start_body(workflow_id)
    path = f"/api/v1/namespaces/default/workflows/{workflow_id}"
    if key:
        headers["Authorization"] = f"Bearer {key.token('POST', path, body)}"
    t0 = time.perf_counter()
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    took = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        raise RuntimeError(f"start {workflow_id}: {resp.status} {data[:300]!r}")
    return took


async def run(n: int, edgeflow_bin: Path, log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"workload": "g", "name": "gateway", "starts": n, "ok": False, "errors": [],
                              "load_at_start": [round(x, 2) for x in os.getloadavg()]}
    # With the edge's search attributes, which every start sets (the gateway from the token).
    server = await start_dev_server(log_dir)
    gateway = None
    try:
        key = EdgeKey()
        jwks = log_dir / "jwks.json"
        jwks.write_text(json.dumps(key.jwks()))
        port = free_port()
        env = {
            "EDGEFLOW_CONFIG_DIR": str(ROOT / "config"),
            "EDGEFLOW__TEMPORAL__ADDRESS": f"http://{server.address}",
            "EDGEFLOW__TEMPORAL__GRPC_COMPRESSION": "none",
            "EDGEFLOW__TASK_QUEUES__MAIN__NAME": QUEUE,
            "EDGEFLOW__GATEWAY__LISTEN": f"127.0.0.1:{port}",
            "EDGEFLOW__GATEWAY__JWKS_FILE": str(jwks),
            "EDGEFLOW__GATEWAY__AUDIENCE": AUDIENCE,
            "EDGEFLOW__GATEWAY__ISSUER": ISSUER,
            "EDGEFLOW__OPS__LISTEN": f"127.0.0.1:{free_port()}",
            # The readiness probe would bill its own calls to the gateway's CPU.
            "EDGEFLOW__WORKER__READINESS_CHECK_SECS": "3600",
            # One line per request is part of the gateway's cost: keep it, as in production.
            "RUST_LOG": "info",
        }
        gateway = Proc("gateway", [str(edgeflow_bin), "gateway"], log_dir / "gateway.log", env=env,
                       cwd=ROOT, drop_env_prefix="EDGEFLOW")
        gateway.wait_for_log("gateway listening", 60)
        via = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        direct = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        client = await Client.connect(server.address, namespace="default")

        async def timed_grpc(workflow_id: str) -> float:
            request = grpc_request(workflow_id)
            t0 = time.perf_counter()
            await client.workflow_service.start_workflow_execution(request)
            return (time.perf_counter() - t0) * 1000

        # Warm every path (connections, the gateway's first describe of the namespace...).
        for i in range(5):
            timed_start(via, f"warm-g-{i}", key)
            timed_start(direct, f"warm-d-{i}", None)
            await timed_grpc(f"warm-r-{i}")
        gateway_ms: list[float] = []
        direct_ms: list[float] = []
        grpc_ms: list[float] = []
        pid = gateway.popen.pid
        # CPU is read over the whole loop (the clock tick is 10 ms, longer than a request); the
        # gateway is idle while the direct starts run.
        cpu_before = cpu_seconds(pid)
        for i in range(n):
            gateway_ms.append(timed_start(via, f"g-{i}", key))
            direct_ms.append(timed_start(direct, f"d-{i}", None))
            grpc_ms.append(await timed_grpc(f"r-{i}"))
        gateway_cpu = cpu_seconds(pid) - cpu_before
        tokens = [key.token("GET", REFUSED_PATH, b"") for _ in range(n)]
        cpu_before = cpu_seconds(pid)
        refused_ms = [timed_refusal(via, token) for token in tokens]
        refused_cpu = cpu_seconds(pid) - cpu_before
        record.update({
            "refused_ms": {"p50": percentile(refused_ms, 50), "p99": percentile(refused_ms, 99)},
            "refused_cpu_ms_per_request": refused_cpu * 1000 / n,
            "ok": True,
            "gateway_ms": {"p50": percentile(gateway_ms, 50), "p99": percentile(gateway_ms, 99)},
            "direct_ms": {"p50": percentile(direct_ms, 50), "p99": percentile(direct_ms, 99)},
            "grpc_ms": {"p50": percentile(grpc_ms, 50), "p99": percentile(grpc_ms, 99)},
            "gateway_cpu_ms_per_request": gateway_cpu * 1000 / n,
            "gateway_peak_rss_mib": status_kib(pid, "VmHWM") / 1024,
            "gateway_rss_mib": status_kib(pid, "VmRSS") / 1024,
        })
        record["added_ms"] = {p: record["gateway_ms"][p] - record["direct_ms"][p] for p in ("p50", "p99")}
    except Exception as e:  # noqa: BLE001 - the record says what failed
        record["errors"].append(f"{type(e).__name__}: {e}")
        if gateway is not None:
            record["errors"].append(gateway.log_tail())
    finally:
        if gateway is not None:
            gateway.stop()
        server.proc.stop()
    return record
