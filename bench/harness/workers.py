"""The three workers under test, started the same way: a fresh task queue, the same slot limits,
warnings-only logs, and a readiness signal the harness waits for before the warm-up.

- `edgeflow`: the release binary (`--quick` may use the debug one), its real settings layers,
  `/readyz` on its ops port;
- `python`: bench/python/worker.py on the Python SDK, prints READY;
- `typescript`: bench/ts/worker.mjs on the TypeScript SDK, prebuilt workflow bundle, prints READY.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .procs import Proc, free_port
from .servers import BENCH, ROOT

# The same limits for every worker: edgeflow's defaults (config/default.toml), set explicitly
# on the peers, whose own defaults differ (e.g. 5 or 10 pollers).
LIMITS = {
    "max_concurrent_activities": 200,
    "max_concurrent_workflow_tasks": 100,
    "max_concurrent_local_activities": 100,
    "max_cached_workflows": 1000,
    "workflow_pollers": 4,
    "activity_pollers": 4,
}

WORKERS = ("edgeflow", "python", "typescript")


@dataclass
class WorkerSpec:
    kind: str
    edgeflow_bin: Path
    temporal_address: str
    task_queue: str
    stub_url: str | None
    extra_env: dict[str, str] | None = None
    grpc_compression: str = "none"
    # The workload's own edgeflow settings (W3: database, services, webhook receiver).
    settings_env: dict[str, str] | None = None
    # The workload's own slot limits (W4: 10,000 activity slots), the same for every worker.
    limits: dict[str, int] | None = None
    # Each peer's timeout for one `http.call` request (edgeflow's is the service's `timeout_secs`
    # in `edgeflow_config`).
    http_timeout_s: int = 30
    # edgeflow's `--config` file with the stub's service settings (it wins over the environment).
    edgeflow_config: Path = BENCH / "edgeflow.toml"


def limits_of(spec: WorkerSpec) -> dict[str, int]:
    return {**LIMITS, **(spec.limits or {})}


def _peer_env(spec: WorkerSpec) -> dict[str, str]:
    limits = limits_of(spec)
    env = {
        "BENCH_TEMPORAL_ADDRESS": spec.temporal_address,
        "BENCH_TASK_QUEUE": spec.task_queue,
        "BENCH_MAX_ACTIVITIES": str(limits["max_concurrent_activities"]),
        "BENCH_MAX_WORKFLOW_TASKS": str(limits["max_concurrent_workflow_tasks"]),
        "BENCH_MAX_LOCAL_ACTIVITIES": str(limits["max_concurrent_local_activities"]),
        "BENCH_MAX_CACHED": str(limits["max_cached_workflows"]),
        "BENCH_WORKFLOW_POLLERS": str(limits["workflow_pollers"]),
        "BENCH_ACTIVITY_POLLERS": str(limits["activity_pollers"]),
        "BENCH_HTTP_TIMEOUT_SECS": str(spec.http_timeout_s),
    }
    if spec.stub_url:
        env["BENCH_STUB_URL"] = spec.stub_url
    env["BENCH_GRPC_COMPRESSION"] = spec.grpc_compression
    return env


def start_worker(spec: WorkerSpec, run_dir: Path, timeout_s: float = 90.0) -> Proc:
    """Starts one worker and returns once it is ready to poll."""
    log = run_dir / f"worker-{spec.kind}.log"
    limits = limits_of(spec)
    if spec.kind == "edgeflow":
        ops_port = free_port()
        env = {
            "EDGEFLOW__TEMPORAL__ADDRESS": f"http://{spec.temporal_address}",
            "EDGEFLOW__TASK_QUEUES__MAIN__NAME": spec.task_queue,
            "EDGEFLOW__WORKER__MAX_CONCURRENT_ACTIVITIES": str(limits["max_concurrent_activities"]),
            "EDGEFLOW__WORKER__MAX_CONCURRENT_WORKFLOW_TASKS": str(limits["max_concurrent_workflow_tasks"]),
            "EDGEFLOW__WORKER__MAX_CONCURRENT_LOCAL_ACTIVITIES": str(limits["max_concurrent_local_activities"]),
            "EDGEFLOW__WORKER__MAX_CACHED_WORKFLOWS": str(limits["max_cached_workflows"]),
            "EDGEFLOW__WORKER__WORKFLOW_POLLERS": str(limits["workflow_pollers"]),
            "EDGEFLOW__WORKER__ACTIVITY_POLLERS": str(limits["activity_pollers"]),
            "EDGEFLOW__OPS__LISTEN": f"127.0.0.1:{ops_port}",
            "EDGEFLOW__TELEMETRY__LOG_LEVEL": "warn",
            "EDGEFLOW__TEMPORAL__GRPC_COMPRESSION": spec.grpc_compression,
            "RUST_LOG": "warn",
        }
        workspace = workspace_of(spec.edgeflow_bin)
        if "[database]" in (workspace / "config" / "default.toml").read_text():
            # The activity families start with the worker: keep their SQLite file and email
            # outbox in the run's folder, not in the checkout's var/.
            env["EDGEFLOW__DATABASE__URL"] = f"sqlite://{run_dir / 'edgeflow.db'}?mode=rwc"
            env["EDGEFLOW__EMAIL__OUTBOX__DIR"] = str(run_dir / "outbox")
        env.update(spec.settings_env or {})
        env.update(spec.extra_env or {})
        argv = [str(spec.edgeflow_bin), "worker"]
        if spec.stub_url:
            # The stub's settings; its port is picked per run, so its URL comes by environment.
            env["EDGEFLOW__SERVICES__BENCH_STUB__BASE_URL"] = spec.stub_url
            argv += ["--config", str(spec.edgeflow_config)]
        proc = Proc("edgeflow", argv, log, env=env, cwd=workspace, drop_env_prefix="EDGEFLOW")
        _wait_ready(proc, f"http://127.0.0.1:{ops_port}/readyz", timeout_s)
        return proc
    if spec.kind == "python":
        argv = [sys.executable, str(BENCH / "python" / "worker.py")]
        proc = Proc("python", argv, log, env=_peer_env(spec), cwd=BENCH / "python")
    elif spec.kind == "typescript":
        argv = ["node", str(BENCH / "ts" / "worker.mjs")]
        proc = Proc("typescript", argv, log, env=_peer_env(spec), cwd=BENCH / "ts")
    else:
        raise ValueError(f"unknown worker {spec.kind}")
    proc.wait_for_log("READY", timeout_s)
    return proc


def workspace_of(binary: Path) -> Path:
    """The checkout a binary was built in (`<root>/target/<profile>/edgeflow`), whose `config/`
    matches it; this checkout otherwise."""
    root = binary.resolve().parent.parent.parent
    return root if (root / "config" / "default.toml").is_file() else ROOT


def _wait_ready(proc: Proc, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"edgeflow exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"edgeflow's /readyz did not answer 200 in {timeout_s:.0f} s:\n{proc.log_tail()}")
