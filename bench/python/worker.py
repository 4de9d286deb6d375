"""The Python SDK peer worker for edgeflow's benchmarks.

Registers `echo` and `fanout` and the activities `echo` and `http.call` (a GET through one
shared aiohttp session, with an `Idempotency-Key` like edgeflow's), with the same slot limits as
edgeflow's defaults. Settings come from the environment:
BENCH_TEMPORAL_ADDRESS, BENCH_TASK_QUEUE, BENCH_STUB_URL (optional), and the limits
BENCH_MAX_ACTIVITIES, BENCH_MAX_WORKFLOW_TASKS, BENCH_MAX_LOCAL_ACTIVITIES, BENCH_MAX_CACHED,
BENCH_WORKFLOW_POLLERS, BENCH_ACTIVITY_POLLERS; BENCH_GRPC_COMPRESSION (gzip or none);
BENCH_HTTP_TIMEOUT_SECS (one `http.call` request, default 30). Prints `READY` once it polls.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.client import Client
from temporalio.service import GrpcCompression
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from workflows import Echo, Fanout


def env_int(name: str) -> int:
    return int(os.environ[name])


class Activities:
    def __init__(self, session: aiohttp.ClientSession, services: dict[str, str]):
        self.session = session
        self.services = services

    @activity.defn(name="echo")
    async def echo(self, input: dict) -> Any:
        delay_ms = input.get("delay_ms", 0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return input["message"]

    @activity.defn(name="http.call")
    async def http_call(self, input: dict) -> dict:
        info = activity.info()
        url = self.services[input["service"]] + input["path"]
        headers = {"Idempotency-Key": f"{info.workflow_id}/{input['step']}"}
        async with self.session.request(
            input.get("method", "GET"), url, params=input.get("query") or None, headers=headers
        ) as response:
            body = await response.read()
            if response.status >= 400:
                raise RuntimeError(f"{url} answered {response.status}")
            content_type = response.headers.get("content-type", "")
            is_json = "json" in content_type
            return {
                "status": response.status,
                "headers": {"content-type": content_type} if content_type else {},
                "json": await response.json() if is_json else None,
                "text": None if is_json or not body else body.decode("utf-8", "replace"),
            }


async def main() -> None:
    # gzip is every SDK's default; bench/run passes BENCH_GRPC_COMPRESSION=none unless told --grpc-compression gzip.
    compression = GrpcCompression.NONE if os.environ.get("BENCH_GRPC_COMPRESSION") == "none" else GrpcCompression.GZIP
    client = await Client.connect(
        os.environ["BENCH_TEMPORAL_ADDRESS"], namespace="default", grpc_compression=compression
    )
    services = {}
    if os.environ.get("BENCH_STUB_URL"):
        services["bench_stub"] = os.environ["BENCH_STUB_URL"]
    # At most as many connections as activity slots, like edgeflow's `max_concurrent` for the stub.
    connector = aiohttp.TCPConnector(limit=env_int("BENCH_MAX_ACTIVITIES"))
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=int(os.environ.get("BENCH_HTTP_TIMEOUT_SECS", "30"))),
    ) as session:
        acts = Activities(session, services)
        worker = Worker(
            client,
            task_queue=os.environ["BENCH_TASK_QUEUE"],
            workflows=[Echo, Fanout],
            activities=[acts.echo, acts.http_call],
            max_concurrent_activities=env_int("BENCH_MAX_ACTIVITIES"),
            max_concurrent_workflow_tasks=env_int("BENCH_MAX_WORKFLOW_TASKS"),
            max_concurrent_local_activities=env_int("BENCH_MAX_LOCAL_ACTIVITIES"),
            max_cached_workflows=env_int("BENCH_MAX_CACHED"),
            workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(env_int("BENCH_WORKFLOW_POLLERS")),
            activity_task_poller_behavior=PollerBehaviorSimpleMaximum(env_int("BENCH_ACTIVITY_POLLERS")),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            print("READY", flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
