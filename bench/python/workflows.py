"""The Python SDK peer's workflows: the same steps as edgeflow's `echo` and `fanout`.

Run in the SDK's default sandbox, as a Python user would run them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

# The same activity options as edgeflow's workflows (workflows/src/{echo,fanout}.rs).
ECHO_TIMEOUT = timedelta(seconds=30)
ECHO_HEARTBEAT = timedelta(seconds=10)
CALL_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="echo")
class Echo:
    @workflow.run
    async def run(self, input: dict) -> Any:
        timeout = ECHO_TIMEOUT + timedelta(milliseconds=input.get("delay_ms", 0))
        return await workflow.execute_activity(
            "echo", input, start_to_close_timeout=timeout, heartbeat_timeout=ECHO_HEARTBEAT
        )


@workflow.defn(name="fanout")
class Fanout:
    @workflow.run
    async def run(self, input: dict) -> Any:
        calls = [
            workflow.execute_activity(
                "http.call",
                {
                    "step": f"fetch-{n}",
                    "service": input["service"],
                    "method": "GET",
                    "path": input["path"],
                    "query": {"part": str(n)},
                },
                start_to_close_timeout=CALL_TIMEOUT,
            )
            for n in (1, 2, 3)
        ]
        outs = await asyncio.gather(*calls)
        message = {"fetched": [out.get("json") for out in outs]}
        return await workflow.execute_activity(
            "echo", {"message": message, "delay_ms": 0}, start_to_close_timeout=CALL_TIMEOUT
        )
