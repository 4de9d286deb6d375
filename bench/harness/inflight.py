"""W4 `inflight`: what each activity held in flight costs a worker (RSS and CPU), at 10,000.

The stub holds every GET below `/hold/` until it is told to release them (stub.py). The driver
is a Python SDK workflow worker inside this harness, on its own task queue: its `w4-hold`
workflows (100 activities each: the server refuses more than 2,000 pending activities per
workflow, and 500 answers released into one workflow at once made it refuse reads as busy)
schedule `http.call` activities on the task queue of the worker under test, with a start-to-close
timeout longer than the hold and a single attempt. So all three workers run the
same activity type with the same input and no workflow code of their own; the dev server cannot
start 2,000 workflows a second, but it can schedule activities from a few workflows fast enough
for them to pile up at the stub.

One run, for one worker:
1. fresh dev server, holding stub, the worker with `max_concurrent_activities` = 10,000 (and
   its HTTP client allowed as many connections, with a request timeout above the hold);
2. warm-up: activities the stub answers at once (not held), then the idle baseline: RSS, PSS,
   and CPU over `idle_s`;
3. the hold: the driver's workflows start; the harness waits until the stub holds all N calls
   (or the count stops growing: then it says so), noting the worker's CPU meanwhile;
4. while holding: RSS and PSS at the start and end of a `hold_s` window and CPU over it;
5. release: every call is answered; every activity must complete with the right answer, and the
   stub must have answered each held call exactly once (a retry would show as more).

Per in-flight activity: (RSS while holding − idle RSS) ÷ held calls, likewise PSS; CPU-ms to
get one activity in flight (step 3 ÷ N) and to complete it after the release (step 5 ÷ N); the
holding window's CPU-ms per second, per 1,000 held calls, minus the idle rate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from .procs import Proc
from .servers import BENCH, start_dev_server, start_stub
from .workers import LIMITS, WorkerSpec, start_worker
from .workloads import STUB_SERVICE

# Activities held at once: the full run's N, and the quick run's (a harness check).
N_FULL = 10_000
N_QUICK = 20
# Activity slots for every worker in W4: at least N (the issue: >= 10,000).
SLOTS = 10_000
# Activities per driver workflow. The server's limit is 2,000 pending per workflow; at 500, the
# completions released into one workflow at once made it answer "Workflow is busy".
PER_WORKFLOW = 100
# How long a held call may wait: longer than reaching N plus the window (Node's fetch gives up on
# a response's headers after 300 s by itself, so the hold as a whole stays below that).
CALL_TIMEOUT_S = 600
ACCUMULATE_LIMIT_S = 240.0
# edgeflow's settings for the stub service in W4: as many calls at once as activity slots, and
# the same request timeout (CALL_TIMEOUT_S).
EDGEFLOW_CONFIG = BENCH / "edgeflow-w4.toml"
# The dev server's own request-rate limits, off: while 10,000 activities are dispatched at once,
# its matching service refused some activity polls ("namespace rate limit exceeded"), and once
# a task already handed to such a poll was lost until its start-to-close timeout.
UNTHROTTLED = tuple(f"{key}=1000000" for key in (
    "frontend.rps", "frontend.namespaceRPS", "frontend.globalNamespaceRPS", "matching.rps", "history.rps"))
# How long every activity may take to complete after the release (the driver's workflows take
# in 10,000 completions; on a loaded machine that took minutes).
RELEASE_LIMIT_S = 900.0
# The count is taken as final when it has not grown for this long.
PLATEAU_S = 60.0


@workflow.defn(name="w4-hold", sandboxed=False)
class Hold:
    """Schedules `count` `http.call`s on `queue` at once and checks every answer; returns how
    many were right and the first few that were not."""

    @workflow.run
    async def run(self, spec: dict) -> dict:
        first, count = spec["first"], spec["count"]
        calls = [
            workflow.execute_activity(
                "http.call",
                {"step": f"hold-{i}", "service": spec["service"], "method": "GET",
                 "path": f"/{spec['prefix']}/{i}", "query": {"part": str(i)}},
                task_queue=spec["queue"],
                start_to_close_timeout=timedelta(seconds=spec["timeout_s"]),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
            for i in range(first, first + count)
        ]
        outs = await asyncio.gather(*calls, return_exceptions=True)
        ok, wrong = 0, []
        for i, out in zip(range(first, first + count), outs):
            if isinstance(out, dict) and out.get("json") == {"ok": True, "part": str(i)}:
                ok += 1
            elif len(wrong) < 3:
                cause = getattr(out, "cause", None)
                wrong.append(f"#{i}: {type(out).__name__}: {out}" + (f" ({cause})" if cause else ""))
        return {"ok": ok, "wrong": wrong}


def _stub(url: str, path: str, method: str = "GET") -> dict:
    req = urllib.request.Request(f"{url}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else {}


def _memory_kib(proc: Proc) -> dict[str, int]:
    """VmRSS and PSS (each shared page divided among the processes mapping it) now."""
    out = {"rss": proc.rss_kib()}
    for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["pss"] = int(line.split()[1])
    return out


async def _run_driver(client: Client, driver_queue: str, worker_queue: str, n: int, prefix: str) -> list:
    """Starts ceil(n / PER_WORKFLOW) `w4-hold` workflows; returns their handles."""
    handles = []
    tag = uuid.uuid4().hex[:8]
    for first in range(0, n, PER_WORKFLOW):
        spec = {"queue": worker_queue, "service": STUB_SERVICE, "prefix": prefix, "first": first,
                "count": min(PER_WORKFLOW, n - first), "timeout_s": CALL_TIMEOUT_S}
        # A long workflow-task timeout: a task that takes in many answers at once may take a while
        # on a busy machine, and a timed-out task is only done again.
        handles.append(await client.start_workflow(Hold.run, spec, id=f"w4-{prefix}-{tag}-{first}",
                                                   task_queue=driver_queue, task_timeout=timedelta(seconds=60)))
    return handles


async def _result(handle) -> Any:
    """A driver workflow's result, asking again while the server says the workflow is busy (many
    completions arriving at once; the SDK client does not retry that itself)."""
    while True:
        try:
            return await handle.result()
        except RPCError as e:
            if "busy" not in str(e).lower():
                raise
            await asyncio.sleep(1.0)


async def _results(handles: list, timeout_s: float) -> tuple[int, list[str]]:
    ok, errors = 0, []
    try:
        outs = await asyncio.wait_for(asyncio.gather(*(_result(h) for h in handles), return_exceptions=True),
                                      timeout_s)
    except asyncio.TimeoutError:
        return 0, [f"the driver's workflows did not finish within {timeout_s:.0f} s"]
    for out in outs:
        if isinstance(out, dict):
            ok += out["ok"]
            errors += out["wrong"]
        else:
            errors.append(f"{type(out).__name__}: {out}")
    return ok, errors[:5]


def counts(record: dict[str, Any]) -> bool:
    """A run counts when every activity completed with the right answer, the stub answered each
    call exactly once, and no held call was dropped during the window."""
    n = record["n"]
    return (record.get("completed") == n and record.get("answered_by_stub") == n
            and record.get("held", 0) > 0 and record.get("held_at_window_end", 0) >= record["held"])


async def run(worker: str, rep: int, args: Any, n: int, out_dir: Path) -> dict[str, Any]:
    """One W4 run for one worker; a JSON record (`ok` only if every held activity completed)."""
    tag = f"w4-{worker}-{rep}"
    log_dir = out_dir / "logs" / tag
    task_queue = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    # Quick: a harness check in the test suite, which must stay short.
    settle_s, idle_s, hold_s = (0.0, 0.5, 0.5) if args.quick else (1.0, 10.0, 30.0)
    limits = {**LIMITS, "max_concurrent_activities": max(SLOTS, n)}
    record: dict[str, Any] = {
        "workload": "w4", "name": "inflight", "worker": worker, "rep": rep, "n": n,
        "task_queue": task_queue, "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "load_at_start": [round(x, 2) for x in os.getloadavg()], "limits": limits,
        "per_driver_workflow": PER_WORKFLOW, "call_timeout_s": CALL_TIMEOUT_S,
        "idle_window_s": idle_s, "hold_window_s": hold_s, "grpc_compression": args.grpc_compression,
        "ok": False, "errors": [],
    }
    if worker == "edgeflow":
        record["edgeflow_bin"] = str(args.edgeflow_bin)
    server = stub = proc = None
    try:
        server = await start_dev_server(log_dir, dynamic_config=UNTHROTTLED)
        stub, stub_url = start_stub(log_dir, 0.0)
        extra_env = dict(kv.split("=", 1) for kv in args.edgeflow_env)
        proc = start_worker(WorkerSpec(worker, args.edgeflow_bin, server.address, task_queue, stub_url,
                                       extra_env=extra_env, grpc_compression=args.grpc_compression,
                                       limits=limits, http_timeout_s=CALL_TIMEOUT_S,
                                       edgeflow_config=EDGEFLOW_CONFIG), log_dir)
        client = await Client.connect(server.address, namespace="default")
        driver_queue = f"{task_queue}-driver"
        async with Worker(client, task_queue=driver_queue, workflows=[Hold],
                          workflow_runner=UnsandboxedWorkflowRunner(), max_concurrent_workflow_tasks=50):
            # Warm-up: calls answered at once, so every code path has run before the baseline.
            if args.warmup:
                warm = await _run_driver(client, driver_queue, task_queue, args.warmup, "warm")
                ok, errors = await _results(warm, 60.0)
                if ok != args.warmup:
                    record["errors"] = [f"warm-up: {ok} of {args.warmup} right"] + errors
                    return record
            await asyncio.sleep(settle_s)
            idle_mem = _memory_kib(proc)
            c0 = proc.cpu()
            await asyncio.sleep(idle_s)
            c1 = proc.cpu()
            idle_cpu_ms_per_s = (c1.cpu_s - c0.cpu_s) * 1000 / (c1.at - c0.at)

            # The hold: wait until the stub holds all N, or the count stops growing.
            s0 = server.cpu()
            t0 = time.monotonic()
            handles = await _run_driver(client, driver_queue, task_queue, n, "hold")
            held, grew_at = 0, time.monotonic()
            while True:
                now_held = (await asyncio.to_thread(_stub, stub_url, "/_held"))["held"]
                if now_held > held:
                    held, grew_at = now_held, time.monotonic()
                if held >= n or time.monotonic() - grew_at > PLATEAU_S or time.monotonic() - t0 > ACCUMULATE_LIMIT_S:
                    break
                if not proc.alive():
                    raise RuntimeError(f"the worker exited while calls piled up:\n{proc.log_tail()}")
                await asyncio.sleep(0.25)
            c2 = proc.cpu()
            s2 = server.cpu()
            accumulate_s = c2.at - t0
            # While holding: a fixed window with nothing to do but keep the calls open.
            mem_a = _memory_kib(proc)
            await asyncio.sleep(hold_s)
            c3 = proc.cpu()
            s3 = server.cpu()
            mem_b = _memory_kib(proc)
            held_end = (await asyncio.to_thread(_stub, stub_url, "/_held"))["held"]
            hold_cpu_ms_per_s = (c3.cpu_s - c2.cpu_s) * 1000 / (c3.at - c2.at)
            breakdown = proc.memory_breakdown_mib()

            # Release, and check every answer.
            t4 = time.monotonic()
            await asyncio.to_thread(_stub, stub_url, "/_release", "POST")
            ok, errors = await _results(handles, RELEASE_LIMIT_S)
            c5 = proc.cpu()
            release_s = c5.at - t4
            answered = (await asyncio.to_thread(_stub, stub_url, "/_held"))["answered"]

        rss_delta = max(mem_a["rss"], mem_b["rss"]) - idle_mem["rss"]
        pss_delta = max(mem_a.get("pss", 0), mem_b.get("pss", 0)) - idle_mem.get("pss", 0)
        per = max(held, 1)
        record.update({
            "held": held,
            "held_at_window_end": held_end,
            "reached_n": held >= n,
            "completed": ok,
            "answered_by_stub": answered,
            "errors": errors,
            "ok": False,
            "accumulate_s": accumulate_s,
            "release_s": release_s,
            "idle_rss_mib": idle_mem["rss"] / 1024,
            "idle_pss_mib": idle_mem.get("pss", 0) / 1024,
            "holding_rss_mib": max(mem_a["rss"], mem_b["rss"]) / 1024,
            "holding_pss_mib": max(mem_a.get("pss", 0), mem_b.get("pss", 0)) / 1024,
            "holding_memory": breakdown,
            "peak_rss_mib": proc.peak_rss_kib() / 1024,
            "rss_kib_per_inflight": rss_delta / per,
            "pss_kib_per_inflight": pss_delta / per,
            "idle_cpu_ms_per_s": idle_cpu_ms_per_s,
            "hold_cpu_ms_per_s": hold_cpu_ms_per_s,
            "hold_cpu_ms_per_s_per_1000": (hold_cpu_ms_per_s - idle_cpu_ms_per_s) * 1000 / per,
            "accumulate_cpu_ms_per_activity": (c2.cpu_s - c1.cpu_s) * 1000 / per,
            "release_cpu_ms_per_activity": (c5.cpu_s - c3.cpu_s) * 1000 / max(ok, 1),
            "server_accumulate_cpu_ms_per_activity": (s2.cpu_s - s0.cpu_s) * 1000 / per,
            "server_hold_cpu_ms_per_s": (s3.cpu_s - s2.cpu_s) * 1000 / (s3.at - s2.at),
            "load_at_hold": [round(x, 2) for x in os.getloadavg()],
        })
        record["ok"] = counts(record)
        if held < n:
            # Not a failure of the worker: the dev server did not dispatch N in time (it is the
            # ceiling on 2 cores); the figures are per held call, and the table shows how many.
            record["notes"] = [f"the stub held at most {held} of {n} calls (the dev server's dispatch "
                               f"rate within {ACCUMULATE_LIMIT_S:.0f} s)"]
        if answered != n:
            record["errors"].append(f"the stub answered {answered} held calls, expected {n}")
        if not proc.alive():
            record["ok"] = False
            record["errors"].append(f"the worker exited during the run:\n{proc.log_tail()}")
    except Exception as e:
        record["ok"] = False
        record["errors"].append(f"{type(e).__name__}: {e}")
    finally:
        for p in (proc, stub, server.proc if server else None):
            if p:
                p.stop()
    return record
