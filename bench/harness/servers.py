"""What a run stands on, fresh per run: a Temporal dev server (in memory: its speed is the
ceiling on 2 cores, and a db file on disk would measure fsync instead), the HTTP stub W2 calls
(and W3's webhook receiver), and for W3 a PostgreSQL cluster and the dev stack's demo services."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
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
    ui_port: int = 0
    starts: int = 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


# How often a start that lost a port race is tried again. Its ports are picked free and bound a
# moment later (ours by free_port, its internal services' by the server itself); a process that
# binds a fixed port can take one in between, and the server exits with "address already in use".
# A fresh start picks other ports (a restart keeps its own three).
START_ATTEMPTS = 5


async def start_dev_server(run_dir: Path, timeout_s: float = 60.0, db_file: Path | None = None,
                           again: DevServer | None = None,
                           search_attributes: tuple[str, ...] = ()) -> DevServer:
    """Starts `temporal server start-dev` on free ports and waits until the `default` namespace
    answers. In memory, unless `db_file` names its SQLite file (put it on tmpfs: on disk the
    file store measures fsync, and under load times out sticky tasks by itself). `again`: start
    on that stopped server's ports (its clients reconnect), with its database file.
    `search_attributes`: Keyword attributes to register."""
    attempt = 1
    while True:
        try:
            return await _start_dev_server_once(run_dir, timeout_s, db_file, again,
                                                search_attributes)
        except LostPortRace:
            if attempt == START_ATTEMPTS:
                raise
            attempt += 1


class LostPortRace(RuntimeError):
    """The dev server exited because a port it picked was taken before it bound it."""


async def _start_dev_server_once(run_dir: Path, timeout_s: float, db_file: Path | None,
                                 again: DevServer | None,
                                 search_attributes: tuple[str, ...]) -> DevServer:
    if again:
        port, http_port, ui_port = again.port, again.http_port, again.ui_port
    else:
        port, http_port, ui_port = free_port(), free_port(), free_port()
    argv = [str(TEMPORAL_CLI), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(port), "--http-port", str(http_port), "--ui-port", str(ui_port),
            # Completion callbacks to the edge on loopback, as `edgeflow dev` allows them.
            "--dynamic-config-value",
            'callback.allowedAddresses=[{"Pattern":"127.0.0.1:*","AllowInsecure":true}]',
            # A stopping worker's in-flight polls are completed by the server, not dropped by the
            # worker (docs/architecture.md, "Stopping"); the chaos runs stop workers under load.
            "--dynamic-config-value", "frontend.enableCancelWorkerPollsOnShutdown=true",
            "--log-level", "error",
            *[arg for name in search_attributes for arg in ("--search-attribute", f"{name}=Keyword")]]
    if db_file:
        argv += ["--db-filename", str(db_file)]
    starts = (again.starts + 1) if again else 1
    log = run_dir / ("temporal.log" if starts == 1 else f"temporal-{starts}.log")
    proc = Proc("temporal", argv, log)
    server = DevServer(proc, port, http_port, ui_port, starts)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            tail = proc.log_tail()
            if "address already in use" in log.read_text(errors="replace"):
                raise LostPortRace(f"the Temporal dev server lost a port race:\n{tail}")
            raise RuntimeError(f"the Temporal dev server exited:\n{tail}")
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


def received_webhooks(stub_url: str) -> dict[str, int]:
    """What the stub has received as a webhook receiver: `{"posts": N, "ids": M}`."""
    with urllib.request.urlopen(f"{stub_url}/_received", timeout=5) as r:
        return json.loads(r.read())


@dataclass
class Postgres:
    proc: Proc
    port: int
    dir: Path
    bin_dir: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def scalar(self, sql: str, database: str = "postgres") -> str:
        """One value (or `|`-separated rows, one a line) from a query, by psql."""
        out = subprocess.run([str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", database, "-X", "-A", "-t", "-c", sql], capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new, empty database on this cluster; its URL."""
        self.scalar(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_bin() -> Path:
    """The newest PostgreSQL server binaries (EDGEFLOW_PG_BIN overrides), as testkit finds them."""
    if os.environ.get("EDGEFLOW_PG_BIN"):
        return Path(os.environ["EDGEFLOW_PG_BIN"])
    found = sorted(
        (int(d.name), d / "bin") for d in Path("/usr/lib/postgresql").glob("*")
        if d.name.isdigit() and (d / "bin" / "initdb").exists()
    )
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; run scripts/setup "
                           "or set EDGEFLOW_PG_BIN")
    return found[-1][1]


def start_postgres(run_dir: Path, timeout_s: float = 60.0) -> Postgres:
    """A throwaway cluster on a free loopback port, with testkit's settings (no fsync: like the
    in-memory dev server, the run measures the worker, not the disk). As root it runs as `postgres`."""
    bin_dir = pg_bin()
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="edgeflow-bench-pg-"))
    if user:
        shutil.chown(base, user, user)
    data = base / "data"
    initdb = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        capture_output=True, text=True, user=user, group=user, timeout=120,
    )
    if initdb.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip()[-600:]}")
    port = free_port()
    proc = Proc(
        "postgres",
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "max_connections=200"],
        run_dir / "postgres.log", user=user,
    )
    pg = Postgres(proc, port, base, bin_dir)
    try:
        proc.wait_for_log("ready to accept connections", timeout_s)
    except Exception:
        pg.stop()
        raise
    return pg


def start_demo_services(run_dir: Path, edgeflow_bin: Path, cwd: Path, failure: str = "none") -> tuple[Proc, str]:
    """`edgeflow dev services` (inventory, payments, shipping) on a free port, misbehaving as
    `failure` says (`dev.demo_failure`); it and its URL."""
    proc = Proc("demo-services", [str(edgeflow_bin), "dev", "services", "--port", "0"],
                run_dir / "demo-services.log", cwd=cwd, drop_env_prefix="EDGEFLOW",
                env={"EDGEFLOW__DEV__DEMO_FAILURE": failure})
    proc.wait_for_log("demo services listening on", 30)
    line = next(ln for ln in proc.log_path.read_text().splitlines() if "demo services listening on" in ln)
    return proc, line.split(" on ", 1)[1].split()[0]
