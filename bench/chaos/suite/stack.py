"""What one experiment runs against, all real and all on loopback, fresh per experiment: a
Temporal dev server (its database a file on tmpfs, so it survives a `kill -9` of the server and
the file store's fsync does not time out sticky tasks by itself), a database of its own on the
suite's PostgreSQL cluster, an SMTP server (aiosmtpd), the demo services (`edgeflow dev
services`, counting every side effect), a webhook receiver that verifies every signature, and
the real `edgeflow worker` processes, which the experiment kills, stops and restarts.

Every process is started by the harness and stopped by its PID (bench/harness/procs.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import Proc, free_port
from harness.servers import ROOT, DevServer, Postgres, start_demo_services, start_dev_server
from harness.workers import WorkerSpec, start_worker, workspace_of

CHAOS = Path(__file__).resolve().parent.parent
TOOLS_PYTHON = ROOT / ".tools" / "venv" / "bin" / "python"
# The development signing secret from config/default.toml: the worker signs with it.
WEBHOOK_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1ub3QtYS1zZWNyZXQ="


@dataclass
class Worker:
    """One `edgeflow worker` process and what happened to it."""

    name: str
    proc: Proc
    started_at: float
    ended: str | None = None  # "killed", "stopped (exit N in S s)"


@dataclass
class Stack:
    name: str
    edgeflow_bin: Path
    log_dir: Path
    postgres: Postgres
    demo_failure: str = "none"
    receiver_fail_first: int = 0
    worker_env: dict[str, str] = field(default_factory=dict)
    services_bin: Path | None = None

    server: DevServer | None = None
    db_name: str = ""
    db_url: str = ""
    task_queue: str = ""
    services: Proc | None = None
    services_url: str = ""
    smtp: Proc | None = None
    smtp_port: int = 0
    smtp_log: Path | None = None
    receiver: Proc | None = None
    receiver_url: str = ""
    workers: list[Worker] = field(default_factory=list)
    _tmpfs: tempfile.TemporaryDirectory | None = None

    async def up(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        shm = Path("/dev/shm")
        self._tmpfs = tempfile.TemporaryDirectory(prefix="edgeflow-chaos-", dir=shm if shm.is_dir() else None)
        self.server = await start_dev_server(self.log_dir, db_file=Path(self._tmpfs.name) / "temporal.db")
        stamp = f"{int(time.time())}_{os.getpid()}"
        self.db_name = f"chaos_{self.name.replace('-', '_')}_{stamp}"
        self.db_url = await asyncio.to_thread(self.postgres.create_database, self.db_name)
        self.task_queue = f"chaos-{self.name}-{stamp}"
        self.services, self.services_url = await asyncio.to_thread(
            start_demo_services, self.log_dir, self.services_bin or self.edgeflow_bin,
            workspace_of(self.services_bin or self.edgeflow_bin), self.demo_failure)
        self.smtp_port = free_port()
        self.smtp_log = self.log_dir / "smtp.jsonl"
        self.smtp = Proc("smtp", [str(TOOLS_PYTHON), str(CHAOS / "suite" / "smtp_server.py"),
                                  "--port", str(self.smtp_port), "--out", str(self.smtp_log)],
                         self.log_dir / "smtp.log")
        receiver_port = free_port()
        self.receiver = Proc("receiver", [sys.executable, "-m", "suite.receiver", "--port", str(receiver_port),
                                          "--secret", WEBHOOK_SECRET,
                                          "--fail-first-per-id", str(self.receiver_fail_first)],
                             self.log_dir / "receiver.log", cwd=CHAOS)
        self.receiver_url = f"http://127.0.0.1:{receiver_port}"
        await asyncio.to_thread(self.smtp.wait_for_log, "smtp listening", 30)
        await asyncio.to_thread(self.receiver.wait_for_log, "receiver listening", 30)

    def settings_env(self) -> dict[str, str]:
        """The worker's settings for this stack (the harness adds address, queue and limits)."""
        return {
            "EDGEFLOW__DATABASE__URL": self.db_url,
            "EDGEFLOW__WEBHOOKS__EDGE__URL": f"{self.receiver_url}/v1/hooks/temporal",
            **{f"EDGEFLOW__SERVICES__{s.upper()}__BASE_URL": f"{self.services_url}/{s}/"
               for s in ("inventory", "payments", "shipping")},
            "EDGEFLOW__EMAIL__TRANSPORT": "smtp",
            "EDGEFLOW__EMAIL__SMTP__HOST": "127.0.0.1",
            "EDGEFLOW__EMAIL__SMTP__PORT": str(self.smtp_port),
            "EDGEFLOW__EMAIL__SMTP__SECURITY": "plain",
            # The worker's own lines (start-up, the drain report) at info; the SDK's at warn.
            "RUST_LOG": "warn,edgeflow=info",
            **self.worker_env,
        }

    async def start_worker(self) -> Worker:
        """A new worker process, returned once its /readyz answers 200."""
        name = f"worker-{len(self.workers) + 1}"
        spec = WorkerSpec("edgeflow", self.edgeflow_bin, self.server.address, self.task_queue, None,
                          grpc_compression="none", settings_env=self.settings_env())
        proc = await asyncio.to_thread(start_worker, spec, self.log_dir / name)
        worker = Worker(name, proc, time.monotonic())
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.ended is None and w.proc.alive()]

    async def kill_worker(self, worker: Worker) -> None:
        """`kill -9`: no drain, no goodbye to the server."""
        worker.proc.signal(signal.SIGKILL)
        await asyncio.to_thread(worker.proc.wait, 30)
        worker.ended = "killed (SIGKILL)"

    async def stop_worker(self, worker: Worker, limit_s: float = 120.0) -> tuple[int | None, float]:
        """SIGTERM, as an orchestrator stops a pod; (exit code, seconds to exit)."""
        started = time.monotonic()
        worker.proc.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.proc.wait, limit_s)
        took = time.monotonic() - started
        worker.ended = f"stopped (SIGTERM): exit {code} after {took:.1f} s"
        return code, took

    async def kill_server(self) -> None:
        """`kill -9` of the Temporal server; its database file stays."""
        await asyncio.to_thread(self.server.kill)

    async def restart_server(self) -> None:
        """The server again, on the same ports and database file."""
        self.server = await start_dev_server(self.log_dir, db_file=Path(self._tmpfs.name) / "temporal.db",
                                             again=self.server)

    def demo_stats(self) -> dict:
        with urllib.request.urlopen(f"{self.services_url}/_stats", timeout=30) as r:
            return json.loads(r.read())

    def received_webhooks(self) -> dict:
        with urllib.request.urlopen(f"{self.receiver_url}/_received", timeout=30) as r:
            return json.loads(r.read())

    def smtp_messages(self) -> list[dict]:
        if not self.smtp_log or not self.smtp_log.exists():
            return []
        return [json.loads(line) for line in self.smtp_log.read_text().splitlines() if line.strip()]

    def worker_logs(self) -> str:
        """The tail of every worker's log, for a failed experiment's report."""
        return "\n".join(f"--- {w.name} ({w.ended or 'running'})\n{w.proc.log_tail(15)}" for w in self.workers)

    def down(self) -> None:
        for w in self.workers:
            w.proc.stop()
        for p in (self.services, self.smtp, self.receiver, self.server.proc if self.server else None):
            if p:
                p.stop()
        if self._tmpfs:
            self._tmpfs.cleanup()
        try:
            self.postgres.scalar(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        except Exception:  # the cluster is going away anyway
            pass
