"""The neutral driver: one Python SDK client that starts N workflows with at most `concurrency`
in flight and awaits every result. The same code drives every worker; only the task queue
differs. A workflow's latency is from the start call to its result."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from temporalio.client import Client

from .workloads import Workload


@dataclass
class DriveResult:
    started: int = 0
    completed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def drive(client: Client, workload: Workload, task_queue: str, n: int, concurrency: int,
                timeout_s: float, first: int = 0) -> DriveResult:
    """Runs workflows `first` … `first + n - 1`; stops waiting after `timeout_s` (those still
    running then count as failed)."""
    out = DriveResult()
    gate = asyncio.Semaphore(concurrency)
    prefix = f"{workload.workflow}-{uuid.uuid4().hex[:8]}"

    async def one(i: int) -> None:
        async with gate:
            t = time.perf_counter()
            out.started += 1
            try:
                handle = await client.start_workflow(
                    workload.workflow,
                    workload.make_input(i),
                    id=f"{prefix}-{i}",
                    task_queue=task_queue,
                )
                result = await handle.result()
            except Exception as e:  # a failed workflow or RPC: counted, first few kept
                out.failed += 1
                if len(out.errors) < 5:
                    out.errors.append(f"#{i}: {type(e).__name__}: {e}")
                return
            latency = (time.perf_counter() - t) * 1000
            problem = workload.check(i, result)
            if problem:
                out.failed += 1
                if len(out.errors) < 5:
                    out.errors.append(f"#{i}: {problem}")
                return
            out.completed += 1
            out.latencies_ms.append(latency)

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(one(i)) for i in range(first, first + n)]
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    if pending:
        out.failed += len(pending)
        out.errors.append(f"{len(pending)} workflows did not finish within {timeout_s:.0f} s")
        await asyncio.gather(*pending, return_exceptions=True)
    out.wall_s = time.perf_counter() - t0
    return out
