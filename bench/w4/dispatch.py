"""Bench W4 (part): the dispatch overhead of an edge activity over a plain http.call.

Usage: dispatch.py ADDRESS N CONCURRENCY

Runs N workflows per kind (at most CONCURRENCY at once), each executing one activity from a Python
SDK workflow: `http.call` (POST to the demo inventory service on loopback, on `edgeflow.inventory`)
and `edge.kv.put` (to the edge in workerd, on `edgeflow.edge`). Each activity's time is read from
its history, ActivityTaskStarted → ActivityTaskCompleted (the server's clock), so the driver's own
cost is not in it. Prints one JSON line: per kind, p50/p90/p99/max in ms.
"""

import asyncio
import json
import os
import sys
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

QUEUE = "w4-dispatch-driver"


@workflow.defn(name="w4-one-activity")
class OneActivity:
    @workflow.run
    async def run(self, call: dict) -> Any:
        return await workflow.execute_activity(
            call["activity"], call["input"], task_queue=call["queue"],
            start_to_close_timeout=timedelta(seconds=int(os.environ.get("W4_TIMEOUT_SECS", "30"))),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


def call(kind: str, i: int) -> dict:
    if kind == "http.call":
        return {"activity": "http.call", "queue": "edgeflow.inventory",
                "input": {"step": "w4", "service": "inventory", "method": "POST",
                          "path": "reservations/{order_id}", "path_params": {"order_id": f"w4-{i}"}}}
    return {"activity": "edge.kv.put", "queue": "edgeflow.edge",
            "input": {"key": f"w4/{i}", "value": "x" * 64}}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p * len(values)))], 2)


async def main() -> None:
    address, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = await Client.connect(address.removeprefix("http://"))
    gate = asyncio.Semaphore(concurrency)
    out = {}
    async with Worker(client, task_queue=QUEUE, workflows=[OneActivity],
                      workflow_runner=UnsandboxedWorkflowRunner(), max_concurrent_workflow_tasks=100):
        for kind in os.environ.get("W4_ORDER", "http.call,edge.kv.put").split(","):
            failed = []

            async def one(i: int) -> str | None:
                async with gate:
                    wid = f"w4-{kind}-{i}-{uuid.uuid4().hex[:6]}"
                    try:
                        await client.execute_workflow(OneActivity.run, call(kind, i), id=wid, task_queue=QUEUE)
                    except Exception as e:  # counted, and left out of the timings
                        chain, c = [], e
                        while c is not None:
                            chain.append(f"{type(c).__name__}: {getattr(c, 'type', '') or ''} {c}")
                            c = c.__cause__
                        failed.append(f"{wid}: " + " <- ".join(chain))
                        return None
                    return wid
            for i in range(10):  # warm-up, not measured
                await one(-1 - i)
            ids = [w for w in await asyncio.gather(*(one(i) for i in range(n))) if w]
            ms = []
            for wid in ids:
                started = completed = None
                async for e in client.get_workflow_handle(wid).fetch_history_events():
                    if e.HasField("activity_task_started_event_attributes"):
                        started = e.event_time.ToDatetime()
                    if e.HasField("activity_task_completed_event_attributes"):
                        completed = e.event_time.ToDatetime()
                ms.append((completed - started).total_seconds() * 1000)
            out[kind] = {"n": len(ms), "failed": failed[:5], "failures": len(failed), "p50": pct(ms, 0.5), "p90": pct(ms, 0.9), "p99": pct(ms, 0.99), "max": round(max(ms), 2)}
    if "edge.kv.put" in out and "http.call" in out:
        out["overhead_ms"] = {p: round(out["edge.kv.put"][p] - out["http.call"][p], 2) for p in ["p50", "p90", "p99"]}
    print(json.dumps(out))


asyncio.run(main())
sys.stdout.flush()
os._exit(0)
