"""A fresh Temporal dev server per run (in memory: its speed is the ceiling on 2 cores, and a
db file on disk would measure fsync instead), and the HTTP stub W2 calls."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from .procs import Proc, free_port

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
TEMPORAL_CLI = ROOT / ".tools" / "venv" / "bin" / "temporal"


@dataclass
class DevServer:
    proc: Proc
    port: int
    http_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_dev_server(run_dir: Path, timeout_s: float = 60.0) -> DevServer:
    """Starts `temporal server start-dev` on free ports, in memory, and waits until the
    `default` namespace answers."""
    port, http_port, ui_port = free_port(), free_port(), free_port()
    proc = Proc(
        "temporal",
        [str(TEMPORAL_CLI), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--http-port", str(http_port), "--ui-port", str(ui_port),
         "--log-level", "error"],
        run_dir / "temporal.log",
    )
    server = DevServer(proc, port, http_port)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"the Temporal dev server exited:\n{proc.log_tail()}")
        try:
            client = await Client.connect(server.address, namespace="default")
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
            return server
        except Exception as e:  # not up yet
            last = e
            await asyncio.sleep(0.2)
    proc.stop()
    raise TimeoutError(f"the Temporal dev server did not answer in {timeout_s:.0f} s: {last}")


def start_stub(run_dir: Path, delay_ms: float) -> tuple[Proc, str]:
    """Starts the HTTP stub on a free port; returns it and its base URL."""
    port = free_port()
    proc = Proc(
        "stub",
        [sys.executable, "-m", "harness.stub", "--port", str(port), "--delay-ms", str(delay_ms)],
        run_dir / "stub.log",
        cwd=BENCH,
    )
    proc.wait_for_log("stub listening", 30)
    return proc, f"http://127.0.0.1:{port}"
