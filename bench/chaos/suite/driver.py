"""Starts the orders, watches them close through whatever the experiment does, and reads every
run's history afterwards. The Temporal server may be killed meanwhile: every call is retried
with a fresh client until the deadline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

CLOSED_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


class Temporal:
    """A client that reconnects: the experiment may kill the server under it."""

    def __init__(self, address: str):
        self.address = address
        self._client: Client | None = None

    async def call(self, what: Callable[[Client], Awaitable[Any]], deadline: float) -> Any:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if self._client is None:
                    self._client = await Client.connect(self.address, namespace="default")
                return await what(self._client)
            except Exception as e:  # the server is down or restarting: the channel reconnects
                last = e
                await asyncio.sleep(0.5)
        raise TimeoutError(f"Temporal did not answer before the deadline: {last}")


def order_input(order_id: str) -> dict:
    """Under the approval threshold, so no human is needed."""
    return {
        "order_id": order_id,
        "customer_email": "chaos@example.com",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 2500}],
        "amount_cents": 2500,
        "currency": "EUR",
    }


@dataclass
class Progress:
    """How many orders have closed, as the watcher last saw it."""

    n: int
    closed: int = 0
    updated: asyncio.Event = field(default_factory=asyncio.Event)

    async def reached(self, share: float) -> None:
        """Returns once at least `share` of the orders have closed."""
        while self.closed < share * self.n:
            self.updated.clear()
            await self.updated.wait()


async def start_orders(temporal: Temporal, task_queue: str, ids: list[str], deadline: float) -> None:
    gate = asyncio.Semaphore(50)

    async def start(client: Client, workflow_id: str) -> None:
        try:
            await client.start_workflow("order", order_input(workflow_id), id=workflow_id, task_queue=task_queue)
        except WorkflowAlreadyStartedError:  # a retried start whose first answer was lost
            pass

    async def one(workflow_id: str) -> None:
        async with gate:
            await temporal.call(lambda c: start(c, workflow_id), deadline)

    await asyncio.gather(*(one(i) for i in ids))


async def watch(temporal: Temporal, progress: Progress, deadline: float) -> float | None:
    """Polls until every order has closed; the time it saw that, or None at the deadline."""
    query = 'WorkflowType = "order" AND ExecutionStatus != "Running"'
    while time.monotonic() < deadline:
        try:
            count = await temporal.call(lambda c: c.count_workflows(query), min(deadline, time.monotonic() + 5))
            progress.closed = count.count
            progress.updated.set()
            if count.count >= progress.n:
                return time.monotonic()
        except TimeoutError:
            pass
        await asyncio.sleep(0.25)
    return None


@dataclass
class RunFacts:
    status: str  # completed, failed, …, or running
    reason: str = ""
    workflow_task_timeouts: int = 0
    workflow_task_timeouts_sticky: int = 0
    workflow_task_failures: int = 0
    activity_timeouts: int = 0
    # For a run with workflow-task trouble: its events, as evidence for the report.
    trace: list[str] = field(default_factory=list)


async def history_facts(temporal: Temporal, ids: list[str], deadline: float) -> dict[str, RunFacts]:
    """Each run's outcome and its workflow-task and activity troubles, from its history."""
    gate = asyncio.Semaphore(16)
    out: dict[str, RunFacts] = {}

    async def one(workflow_id: str) -> None:
        async with gate:
            history = await temporal.call(lambda c: c.get_workflow_handle(workflow_id).fetch_history(), deadline)
        facts = RunFacts(status="running")
        for event in history.events:
            t = event.event_type
            if t == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                facts.workflow_task_timeouts += 1
                # TIMEOUT_TYPE_SCHEDULE_TO_START (2): it waited on a sticky queue nobody polled.
                if event.workflow_task_timed_out_event_attributes.timeout_type == 2:
                    facts.workflow_task_timeouts_sticky += 1
            elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                facts.workflow_task_failures += 1
            elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
                facts.activity_timeouts += 1
            elif t in CLOSED_EVENTS:
                facts.status = CLOSED_EVENTS[t]
                if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                    failure = event.workflow_execution_failed_event_attributes.failure
                    facts.reason = failure.message
        if facts.workflow_task_timeouts or facts.workflow_task_failures:
            facts.trace = trace(history.events)
        out[workflow_id] = facts

    await asyncio.gather(*(one(i) for i in ids))
    return out


def trace(events) -> list[str]:
    """One line per event: seconds since the first, type, and for workflow tasks where they were
    queued, who started them and how they timed out."""
    first = events[0].event_time.ToDatetime() if events else None
    out = []
    for e in events:
        at = (e.event_time.ToDatetime() - first).total_seconds()
        name = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        extra = ""
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            tq = e.workflow_task_scheduled_event_attributes.task_queue
            extra = f" queue={tq.name} kind={tq.kind}"
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            extra = f" by={e.workflow_task_started_event_attributes.identity}"
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            extra = f" timeout_type={e.workflow_task_timed_out_event_attributes.timeout_type}"
        out.append(f"{at:7.2f} {e.event_id:3d} {name}{extra}")
    return out
