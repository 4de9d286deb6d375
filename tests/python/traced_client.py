"""Temporal's Python SDK, traced with its own OpenTelemetry interceptor, calling into edgeflow.

Used by tests/it/trace.rs to show that edgeflow continues another SDK's trace:
  start-order ADDRESS TASK_QUEUE WORKFLOW_ID INPUT_JSON_FILE
      starts edgeflow's `order` from a Python client inside a span, waits for its result;
  call-echo ADDRESS EDGEFLOW_TASK_QUEUE
      runs a Python workflow on a Python worker that calls edgeflow's `echo` activity.
Each prints one JSON line: {"trace_id": "<32 hex>", "result": ...}. No exporter is configured:
the trace id is what the test looks for among the spans edgeflow exported.
"""

import asyncio
import json
import os
import sys
import uuid
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Worker


@workflow.defn(name="python-calls-echo")
class PythonCallsEcho:
    @workflow.run
    async def run(self, edgeflow_queue: str) -> Any:
        return await workflow.execute_activity(
            "echo",
            {"message": "from python"},
            task_queue=edgeflow_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )


async def main(argv: list[str]) -> None:
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("edgeflow-tests")
    mode, address = argv[0], argv[1]
    client = await Client.connect(address, interceptors=[TracingInterceptor()])
    with tracer.start_as_current_span("python-client") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        if mode == "start-order":
            task_queue, workflow_id, input_file = argv[2], argv[3], argv[4]
            with open(input_file, encoding="utf-8") as f:
                order = json.load(f)
            handle = await client.start_workflow(
                "order", order, id=workflow_id, task_queue=task_queue
            )
            result = await handle.result()
        elif mode == "call-echo":
            edgeflow_queue = argv[2]
            own_queue = f"python-{uuid.uuid4()}"
            async with Worker(client, task_queue=own_queue, workflows=[PythonCallsEcho]):
                result = await client.execute_workflow(
                    PythonCallsEcho.run,
                    edgeflow_queue,
                    id=f"python-calls-echo-{uuid.uuid4()}",
                    task_queue=own_queue,
                )
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"trace_id": trace_id, "result": result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    # The SDK's Rust core threads can outlive the interpreter's finalisation and abort it
    # ("PyGILState_Release ... must be current"); the work is done and printed, so skip it.
    sys.stdout.flush()
    os._exit(0)
