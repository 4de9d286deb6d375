"""What a run stands on, fresh per run: a Temporal dev server (in memory: its speed is the
ceiling on 2 cores, and a db file on disk would measure fsync instead), the HTTP stub W2 calls
(and W3's webhook receiver), and for W3 a PostgreSQL cluster and the dev stack's demo services."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .procs import CpuSample, Proc, cpu_seconds, free_port

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
TEMPORAL_CLI = ROOT / ".tools" / "venv" / "bin" / "temporal"


@dataclass
class DevServer:
    """A Temporal dev server started the project's one way: `edgeflow dev server --json`, which
    picks free ports, registers edgeflow's search attributes, allows completion callbacks to
    loopback, completes a stopping worker's polls and retries a start that lost a port race."""
    proc: Proc  # `edgeflow dev server`, which stops the server on SIGTERM
    pid: int  # the server process itself: its CPU is the server's, and kill -9 of it is a crash
    port: int
    http_port: int
    db_file: Path | None = None
    starts: int = 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu(self) -> CpuSample:
        return CpuSample(cpu_seconds(self.pid), time.monotonic())

    def kill(self) -> None:
        """`kill -9` of the server process, like a crash; `edgeflow dev server` then exits."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)


def edgeflow_bin() -> Path:
    """The `edgeflow` binary: EDGEFLOW_BIN (the harnesses set it from --edgeflow-bin), else the
    debug build."""
    return Path(os.environ.get("EDGEFLOW_BIN") or ROOT / "target" / "debug" / "edgeflow")


async def start_dev_server(run_dir: Path, timeout_s: float = 90.0, db_file: Path | None = None,
                           again: DevServer | None = None, dynamic_config: tuple[str, ...] = ()) -> DevServer:
    """Starts a dev server on free ports and waits until it answers. In memory, unless `db_file`
    names its SQLite file (put it on tmpfs: on disk the file store measures fsync, and under load
    times out sticky tasks by itself). `again`: start on that stopped server's ports (its clients
    reconnect), with its database file. `dynamic_config`: further `KEY=VALUE` dynamic config."""
    starts = (again.starts + 1) if again else 1
    suffix = "" if starts == 1 else f"-{starts}"
    argv = [str(edgeflow_bin()), "dev", "server", "--json", "--log-level", "error",
            "--log", str(run_dir / f"temporal{suffix}.log")]
    if again:
        argv += ["--port", str(again.port), "--http-port", str(again.http_port)]
    if db_file:
        argv += ["--db-filename", str(db_file)]
    for value in dynamic_config:
        argv += ["--dynamic-config-value", value]
    proc = Proc("temporal", argv, run_dir / f"dev-server{suffix}.log", cwd=ROOT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                info = json.loads(line)
                return DevServer(proc, info["pid"], info["grpc_port"], info["http_port"], db_file, starts)
        if not proc.alive():
            raise RuntimeError(f"edgeflow dev server exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        await asyncio.sleep(0.1)
    proc.stop()
    raise TimeoutError(f"the Temporal dev server did not answer in {timeout_s:.0f} s:\n{proc.log_tail()}")


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
