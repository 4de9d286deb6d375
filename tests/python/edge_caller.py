"""Schedules edge activities by name from a Python SDK workflow, as any SDK's workflow would.

Usage: edge_caller.py ADDRESS TASK_QUEUE CALLS_JSON

CALLS_JSON is a list of calls, run at once, each a workflow on TASK_QUEUE (served by this script)
that executes one activity on the edge's queue:
  {"id": workflow id, "activity": "edge.kv.put", "input": {...}, "edge_queue": "<queue>.edge",
   "start_to_close_secs": 10, "heartbeat_secs": null, "max_attempts": 3, "cancel_after_secs": null}
Prints one JSON line: a list, per call, of {"id", "result"} or {"id", "error": {"kind",
"type", "message", "non_retryable"}} where kind is application, timeout or cancelled.
"""

import asyncio
import json
import os
import sys
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@workflow.defn(name="edge-caller")
class EdgeCaller:
    @workflow.run
    async def run(self, call: dict) -> Any:
        heartbeat = call.get("heartbeat_secs")
        return await workflow.execute_activity(
            call["activity"],
            call["input"],
            task_queue=call["edge_queue"],
            start_to_close_timeout=timedelta(seconds=call.get("start_to_close_secs", 10)),
            heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else None,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200),
                backoff_coefficient=1.0,
                maximum_attempts=call.get("max_attempts", 3),
            ),
        )


def describe(err: BaseException) -> dict:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        return {"kind": "application", "type": cause.type, "message": cause.message,
                "non_retryable": cause.non_retryable}
    if isinstance(cause, TimeoutError):
        return {"kind": "timeout", "type": str(cause.type), "message": cause.message}
    if isinstance(cause, CancelledError):
        return {"kind": "cancelled", "message": cause.message}
    return {"kind": type(cause).__name__, "message": str(cause)}


async def one(client: Client, queue: str, call: dict) -> dict:
    handle = await client.start_workflow(
        EdgeCaller.run, call, id=call["id"], task_queue=queue,
        execution_timeout=timedelta(seconds=120),
    )
    if call.get("cancel_after_secs"):
        await asyncio.sleep(call["cancel_after_secs"])
        await handle.cancel()
    try:
        return {"id": call["id"], "result": await handle.result()}
    except WorkflowFailureError as e:
        return {"id": call["id"], "error": describe(e.cause)}


async def main() -> None:
    address, queue, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = await Client.connect(address.removeprefix("http://"))
    async with Worker(client, task_queue=queue, workflows=[EdgeCaller],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        results = await asyncio.gather(*(one(client, queue, c) for c in calls))
    print(json.dumps(results))


asyncio.run(main())
sys.stdout.flush()
# The SDK's native threads can crash the interpreter's finalization under load ("PyGILState_Release
# ... must be current"), after the answer is out: skip it.
os._exit(0)
