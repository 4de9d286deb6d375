"""The experiments: what each does to the running system, and what it expects of every order.

Faults are timed by progress (a share of the N orders closed), so they land while orders are in
flight whatever N is. Every experiment asserts the same invariants (checks.py); `expect` says how
its orders should end, `graceful` adds "no workflow-task failure in any history" (timeouts are
counted; see docs/architecture.md, "Stopping", for why they are not yet zero).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .driver import Progress
from .stack import Stack


@dataclass
class Ctx:
    stack: Stack
    progress: Progress
    # (seconds since the first start, what happened)
    events: list[tuple[float, str]] = field(default_factory=list)
    t0: float = 0.0
    # Facts the experiment's own assertions need (e.g. a stopped worker's exit code).
    facts: dict = field(default_factory=dict)

    def note(self, what: str) -> float:
        """Logs what just happened; returns when (seconds since the first start)."""
        at = time.monotonic() - self.t0
        self.events.append((round(at, 2), what))
        print(f"chaos:   {at:6.1f} s  {what}", flush=True)
        return at


@dataclass(frozen=True)
class Experiment:
    key: str
    does: str
    scenario: Callable[[Ctx], Awaitable[None]] | None = None
    workers: int = 1
    demo_failure: str = "none"
    receiver_fail_first: int = 0
    worker_env: dict[str, str] = field(default_factory=dict)
    # "completed": every order completes with one charge, reservation and notice.
    # "compensated": every order fails, and keeps nothing (refunded, released).
    expect: str = "completed"
    # A failed order's reason must match this (it names the final cause).
    reason: str | None = None
    # Zero workflow-task failures in every history after a graceful stop (timeouts counted).
    graceful: bool = False
    # In `--quick` (every scripts/test): only what no other test covers. The integration tests
    # cover a worker killed mid-order, retried and compensated jobs, a timed-out charge refunded
    # and a webhook retried (tests/it/order.rs); a stop under load (tests/it/drain.rs); not a
    # Temporal server killed under load, nor the sigterm timeout count the chaos table reports.
    quick: bool = True


async def kill_three_times(ctx: Ctx) -> None:
    for share in (0.2, 0.45, 0.7):
        await ctx.progress.reached(share)
        worker = ctx.stack.live_workers()[0]
        await ctx.stack.kill_worker(worker)
        ctx.note(f"kill -9 {worker.name} ({ctx.progress.closed}/{ctx.progress.n} closed)")
        replacement = await ctx.stack.start_worker()
        ctx.note(f"{replacement.name} ready")
        await asyncio.sleep(1.0)


async def kill_one_of_two(ctx: Ctx) -> None:
    await ctx.progress.reached(0.3)
    worker = ctx.stack.live_workers()[-1]
    await ctx.stack.kill_worker(worker)
    ctx.note(f"kill -9 {worker.name}, not replaced ({ctx.progress.closed}/{ctx.progress.n} closed)")


async def sigterm_then_new_worker(ctx: Ctx) -> None:
    await ctx.progress.reached(0.3)
    worker = ctx.stack.live_workers()[0]
    ctx.note(f"SIGTERM {worker.name} ({ctx.progress.closed}/{ctx.progress.n} closed)")
    code, took = await ctx.stack.stop_worker(worker)
    ctx.facts["stopped_exit_code"] = code
    ctx.facts["stop_s"] = round(took, 2)
    ctx.facts["drain_log"] = next((line for line in worker.proc.log_tail(200).splitlines() if "drained:" in line), "")
    ctx.note(f"{worker.name} exited {code} after {took:.1f} s")
    replacement = await ctx.stack.start_worker()
    ctx.note(f"{replacement.name} ready")


async def rolling_restart(ctx: Ctx) -> None:
    """A rolling update of two workers as an orchestrator runs one with a surge of one and none
    unavailable: a new worker starts, then an old one gets SIGTERM, once at 25 % and once at 50 %."""
    stops = []
    for share in (0.25, 0.5):
        await ctx.progress.reached(share)
        replacement = await ctx.stack.start_worker()
        ctx.note(f"{replacement.name} ready ({ctx.progress.closed}/{ctx.progress.n} closed)")
        old = ctx.stack.live_workers()[0]
        ctx.note(f"SIGTERM {old.name}")
        code, took = await ctx.stack.stop_worker(old)
        stops.append((code, took))
        ctx.note(f"{old.name} exited {code} after {took:.1f} s")
    bad = [code for code, _ in stops if code != 0]
    ctx.facts["stopped_exit_code"] = bad[0] if bad else 0
    ctx.facts["stop_s"] = round(max(took for _, took in stops), 2)


async def kill_the_server(ctx: Ctx) -> None:
    await ctx.progress.reached(0.3)
    await ctx.stack.kill_server()
    ctx.note(f"kill -9 the Temporal server ({ctx.progress.closed}/{ctx.progress.n} closed)")
    await asyncio.sleep(3.0)
    await ctx.stack.restart_server()
    ctx.note("Temporal server back (same ports, same database file)")


# The graceful stops run without a sticky cache, the setting for a stop that leaves no
# schedule-to-start timeout (docs/architecture.md, "Stopping"); the others keep the shipped 1000.
CHEAP_STOP = {"EDGEFLOW__WORKER__MAX_CACHED_WORKFLOWS": "0"}

EXPERIMENTS = [
    Experiment("baseline", "no fault", quick=False),
    Experiment("kill-9-x3", "kill -9 the worker at 20 %, 45 % and 70 % closed; a new one starts each time",
               kill_three_times, quick=False),
    Experiment("two-workers-one-killed", "two workers; kill -9 one at 30 % closed, not replaced",
               kill_one_of_two, workers=2, quick=False),
    Experiment("sigterm", "SIGTERM the worker at 30 % closed; a new one starts once it has exited",
               sigterm_then_new_worker, graceful=True, worker_env=CHEAP_STOP),
    Experiment("rolling-restart", "two workers; at 25 % and at 50 % closed a new worker starts, then an old one "
               "gets SIGTERM", rolling_restart, workers=2, graceful=True, quick=False, worker_env=CHEAP_STOP),
    Experiment("temporal-kill-9", "kill -9 the Temporal server at 30 % closed; restart it 3 s later on its "
               "database file (tmpfs)", kill_the_server),
    Experiment("slow-payments", "payments takes every charge at once and answers 20 s later, above its 10 s "
               "timeout (charge_payment.max_attempts = 3, payments.max_concurrent = 200, so it ends in a minute)",
               demo_failure="slow:payments:20", quick=False,
               worker_env={"EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__MAX_ATTEMPTS": "3",
                           "EDGEFLOW__SERVICES__PAYMENTS__MAX_CONCURRENT": "200"},
               expect="compensated", reason=r"charge_payment.*timed out"),
    Experiment("errors-30", "30 % of all calls to every service answer 503 at random, compensations included",
               demo_failure="errors:30", quick=False),
    Experiment("webhook-fails-twice", "the webhook receiver answers 500 to the first two deliveries of every id",
               receiver_fail_first=2, quick=False),
]

BY_KEY = {e.key: e for e in EXPERIMENTS}
