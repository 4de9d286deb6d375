"""`bench/run [--quick] [--workloads w1,w2,w3,w4,e,g] [--reps N] [--n N] [--workers ...]`

Runs each workload `reps` times, alternating the workers (A B C A B C …) so drift hits them
all; every run gets a fresh dev server and task queue. Writes one JSON file per run to
`results/<timestamp>/` (quick runs: `results/quick/`), then the markdown tables. Exits non-zero
if any run did not complete every workflow; the last line says `bench: X passed, Y failed`
(one line per run: each workload × worker × repetition, and each E and G repetition).
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from . import edge, gateway, inflight, report
from .driver import drive
from .procs import Sampler, stop_all
from .servers import (BENCH, ROOT, TEMPORAL_CLI, received_webhooks, start_demo_services, start_dev_server,
                      start_postgres, start_stub)
from .workers import LIMITS, WORKERS, WorkerSpec, start_worker, workspace_of
from .workloads import WORKLOADS, Workload

STUB_DELAY_MS = 20.0
DEFAULT_WORKLOADS = ("w1", "w2", "w3", "w4", "e", "g")


def percentile(sorted_xs: list[float], p: float) -> float:
    """Nearest-rank percentile (the same definition as edge/e2e/latency.mjs)."""
    if not sorted_xs:
        return float("nan")
    k = max(0, min(len(sorted_xs) - 1, -(-p * len(sorted_xs) // 100) - 1))
    return sorted_xs[int(k)]


def mib(kib: int) -> float:
    return kib / 1024


# A key for --encryption runs, fresh per session: edgeflow's settings and the driver's codec.
ENCRYPTION_KEY = os.urandom(32)
ENCRYPTION_ENV = {
    "EDGEFLOW__ENCRYPTION__KEYS__BENCH__KEY": base64.b64encode(ENCRYPTION_KEY).decode(),
    "EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID": "bench",
}


def encrypting_converter():
    """The SDK's default data converter with the codec of Temporal's Python encryption sample
    (tests/python/payload_codec.py), holding the key edgeflow gets."""
    import dataclasses

    import temporalio.converter

    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from payload_codec import EncryptionCodec

    return dataclasses.replace(temporalio.converter.default(),
                               payload_codec=EncryptionCodec({"bench": ENCRYPTION_KEY}, "bench"))


async def run_one(workload: Workload, worker: str, rep: int, args: argparse.Namespace, n: int,
                  out_dir: Path) -> dict[str, Any]:
    """One measured run: fresh server (and stub), worker, warm-up, N workflows; a JSON record."""
    tag = f"{workload.key}-{worker}-{rep}"
    log_dir = out_dir / "logs" / tag
    task_queue = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    record: dict[str, Any] = {
        "workload": workload.key,
        "name": workload.name,
        "worker": worker,
        "rep": rep,
        "n": n,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "activities_per_workflow": workload.activities_per_workflow,
        "task_queue": task_queue,
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "limits": LIMITS,
        "grpc_compression": args.grpc_compression,
        "ok": False,
        "errors": [],
    }
    if worker == "edgeflow":
        record["edgeflow_bin"] = str(args.edgeflow_bin)
        record["edgeflow_env"] = args.edgeflow_env
        record["otlp"] = args.otlp
        record["encryption"] = args.encryption
    server = stub = proc = postgres = services = receiver_url = otlp = None
    try:
        server = await start_dev_server(log_dir)
        stub_url = None
        settings_env: dict[str, str] = {}
        if workload.needs_stub or workload.needs_order_stack:
            stub, stub_url = start_stub(log_dir, STUB_DELAY_MS)
        if workload.needs_order_stack:
            postgres = start_postgres(log_dir)
            services, services_url = start_demo_services(log_dir, args.edgeflow_bin,
                                                         workspace_of(args.edgeflow_bin))
            settings_env = {
                "EDGEFLOW__DATABASE__URL": postgres.url,
                "EDGEFLOW__WEBHOOKS__EDGE__URL": f"{stub_url}/v1/hooks/temporal",
                **{f"EDGEFLOW__SERVICES__{name.upper()}__BASE_URL": f"{services_url}/{name}/"
                   for name in ("inventory", "payments", "shipping")},
            }
            receiver_url, stub_url = stub_url, None  # the stub only receives W3's webhooks
        extra_env = dict(kv.split("=", 1) for kv in args.edgeflow_env)
        data_converter = None
        if args.encryption and worker == "edgeflow":
            extra_env.update(ENCRYPTION_ENV)
            data_converter = encrypting_converter()
        if args.otlp and worker == "edgeflow":
            otlp, endpoint = start_otlp_receiver(args.otlp_receiver_bin, log_dir)
            extra_env["EDGEFLOW__TELEMETRY__OTLP_ENDPOINT"] = endpoint
        proc = start_worker(
            WorkerSpec(worker, args.edgeflow_bin, server.address, task_queue, stub_url,
                       extra_env=extra_env,
                       grpc_compression=args.grpc_compression, settings_env=settings_env), log_dir
        )
        client = await Client.connect(server.address, namespace="default",
                                      **({"data_converter": data_converter} if data_converter else {}))
        if args.warmup:
            warm = await drive(client, workload, task_queue, args.warmup, args.concurrency,
                               args.timeout_s, first=1_000_000)
            if warm.failed:
                record["errors"] = ["warm-up failed: " + e for e in warm.errors]
                return record
        record["worker_rss_before_mib"] = mib(proc.rss_kib())
        c_worker, c_server = proc.cpu(), server.cpu()
        c_stub = stub.cpu() if stub else None
        c_driver = os.times()
        perf = start_perf(proc, log_dir) if args.perf else None
        with Sampler(proc) as sampler:
            res = await drive(client, workload, task_queue, n, args.concurrency, args.timeout_s)
        if perf:
            record["profile"] = finish_perf(perf, log_dir)
        d_worker = proc.cpu().cpu_s - c_worker.cpu_s
        d_server = server.cpu().cpu_s - c_server.cpu_s
        t = os.times()
        d_driver = (t.user - c_driver.user) + (t.system - c_driver.system)
        lat = sorted(res.latencies_ms)
        done = max(res.completed, 1)
        record.update({
            "completed": res.completed,
            "failed": res.failed,
            "errors": res.errors,
            "ok": res.completed == n and res.failed == 0,
            "wall_s": res.wall_s,
            "workflows_per_s": res.completed / res.wall_s,
            "activities_per_s": res.completed * workload.activities_per_workflow / res.wall_s,
            "worker_cpu_ms": d_worker * 1000,
            "worker_cpu_ms_per_workflow": d_worker * 1000 / done,
            "worker_cpu_utilisation": d_worker / res.wall_s,
            "server_cpu_ms_per_workflow": d_server * 1000 / done,
            "driver_cpu_ms_per_workflow": d_driver * 1000 / done,
            "worker_peak_rss_mib": mib(proc.peak_rss_kib()),
            "worker_sampled_max_rss_mib": mib(sampler.max_rss_kib),
            "worker_rss_after_mib": mib(proc.rss_kib()),
            "worker_memory_after": proc.memory_breakdown_mib(),
            "latency_ms": {
                "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
                "max": lat[-1] if lat else None, "mean": sum(lat) / len(lat) if lat else None,
            },
        })
        if stub and workload.needs_stub:
            record["stub_cpu_ms_per_workflow"] = (stub.cpu().cpu_s - c_stub.cpu_s) * 1000 / done
        if workload.needs_order_stack:
            # Every order (warm-up ones too) leaves exactly one of each side effect: a row, an email,
            # a completion webhook (one id, the same on a retry).
            hooks = received_webhooks(receiver_url)
            found = {
                "orders rows in PostgreSQL": int(postgres.scalar("SELECT count(*) FROM orders")),
                "emails in the outbox": len(list((log_dir / "outbox").glob("*.eml"))),
                "distinct completion webhooks": hooks["ids"],
            }
            record["side_effects"] = {**found, "webhook posts": hooks["posts"]}
            expected = n + args.warmup
            for what, count in found.items():
                if count != expected:
                    record["ok"] = False
                    record["errors"].append(f"{count} {what}, expected {expected}")
        if not proc.alive():
            record["ok"] = False
            record["errors"].append(f"the worker exited during the run:\n{proc.log_tail()}")
    except Exception as e:
        record["ok"] = False
        record["errors"].append(f"{type(e).__name__}: {e}")
    finally:
        for p in (proc, services, stub, server.proc if server else None):
            if p:
                p.stop()
        if postgres:
            postgres.stop()
        if otlp:
            otlp.stdin.close()
            otlp.wait(timeout=10)
            # Its last line counts what it received: proof the traced run exported its spans.
            said = (log_dir / "otlp-receiver.log").read_text().split()
            record["otlp_spans"] = int(said[1]) if len(said) > 1 and said[1].isdigit() else None
    return record


def start_otlp_receiver(binary: Path, log_dir: Path) -> tuple[subprocess.Popen, str]:
    """testkit's OTLP receiver (gRPC): the worker exports its spans there in `--otlp` runs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log_dir / "otlp-receiver.log", "w"), text=True)
    line = proc.stdout.readline()
    endpoint = next((part.split("=", 1)[1] for part in line.split() if part.startswith("grpc=")), None)
    if not endpoint:
        proc.kill()
        raise RuntimeError(f"otlp-receiver said {line!r}")
    return proc, endpoint


def start_perf(proc, log_dir: Path):
    """`perf record` of the worker over the measured window (call graphs from frame pointers
    where there are any; the flat profile by symbol is what the report uses)."""
    from .procs import Proc
    return Proc("perf", ["perf", "record", "-F", "499", "-g", "-p", str(proc.pid),
                         "-o", str(log_dir / "perf.data")], log_dir / "perf.log")


def finish_perf(perf, log_dir: Path) -> str:
    """Stops `perf record` and writes the flat profile (self time by shared object and symbol)."""
    import signal as _signal
    os.kill(perf.pid, _signal.SIGINT)
    perf.popen.wait(timeout=60)
    perf.stop()
    out = log_dir / "perf-report.txt"
    with open(out, "w") as f:
        subprocess.run(["perf", "report", "-i", str(log_dir / "perf.data"), "--stdio", "--no-children",
                        "--sort", "dso,symbol", "--percent-limit", "0.5"], stdout=f,
                       stderr=subprocess.DEVNULL, timeout=300)
    with open(log_dir / "perf-report-dso.txt", "w") as f:
        subprocess.run(["perf", "report", "-i", str(log_dir / "perf.data"), "--stdio", "--no-children",
                        "--sort", "dso", "-g", "none"], stdout=f, stderr=subprocess.DEVNULL, timeout=300)
    return str(out)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} × {model}, {mem_gib:.0f} GiB, {platform.system()} {platform.release()}"


def versions(edgeflow_bin: Path) -> dict[str, str]:
    def cmd(*argv: str, cwd: Path | None = None) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    rev = cmd("git", "rev-parse", "--short", "HEAD", cwd=ROOT)
    dirty = cmd("git", "status", "--porcelain", "--untracked-files=no", cwd=ROOT)
    ts_pkg = BENCH / "ts" / "node_modules" / "@temporalio" / "worker" / "package.json"
    return {
        "edgeflow": f"{rev}{'+uncommitted' if dirty else ''} ({'release' if 'release' in str(edgeflow_bin) else 'debug'} build)",
        "python_sdk": importlib.metadata.version("temporalio"),
        "python": platform.python_version(),
        "typescript_sdk": json.loads(ts_pkg.read_text())["version"] if ts_pkg.exists() else "?",
        "node": cmd("node", "--version"),
        "temporal_cli": cmd(str(TEMPORAL_CLI), "--version").replace("temporal version ", ""),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny N, one repetition, debug edgeflow build")
    p.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                   help="comma-separated: w1, w2, w3, w4, e, g (default all)")
    p.add_argument("--workers", default=",".join(WORKERS), help="comma-separated subset of edgeflow,python,typescript")
    p.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    p.add_argument("--n", type=int, help="workflows per run, overriding each workload's N")
    p.add_argument("--edge-n", type=int, help="starts each way for E and G (default 500, quick 20)")
    p.add_argument("--concurrency", type=int, default=200, help="workflows in flight (default 200)")
    p.add_argument("--warmup", type=int, help="unmeasured workflows before each run (default 20, quick 2)")
    p.add_argument("--edgeflow-bin", type=Path, help="edgeflow binary (default target/release/edgeflow, quick: target/debug/edgeflow)")
    p.add_argument("--edgeflow-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the edgeflow worker (repeatable), e.g. to try a tuning; "
                        "such runs never update latest.md")
    p.add_argument("--grpc-compression", choices=("gzip", "none"), default="none",
                   help="every worker's worker-to-server gRPC compression (default none: the server is on "
                        "loopback; every SDK's own default is gzip)")
    p.add_argument("--otlp", action="store_true",
                   help="edgeflow exports its traces over OTLP/gRPC to testkit's receiver (target/debug/otlp-receiver), "
                        "to measure what tracing costs; such runs never update latest.md")
    p.add_argument("--encryption", action="store_true",
                   help="edgeflow encrypts every payload (docs/encryption.md), and the driver's client holds "
                        "the key, with the codec of Temporal's Python sample: what encryption costs")
    p.add_argument("--perf", action="store_true",
                   help="profile each worker with `perf record` over the measured window (writes results/profile-<timestamp>; "
                        "perf's own cost inflates the figures, so these runs never update latest.md)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="run nothing: rebuild the tables from the JSON runs in DIR (and, for a full run, latest.md and the README)")
    p.add_argument("--out", type=Path, help="results folder (default results/<timestamp>, quick: results/quick)")
    args = p.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 20)
    args.edge_n = args.edge_n or (20 if args.quick else 500)
    args.otlp_receiver_bin = ROOT / "target" / "debug" / "otlp-receiver"
    args.edgeflow_bin = (args.edgeflow_bin or ROOT / "target" / ("debug" if args.quick else "release") / "edgeflow").absolute()
    # The dev servers are started through this binary too (`edgeflow dev server`, servers.py).
    os.environ["EDGEFLOW_BIN"] = str(args.edgeflow_bin)
    args.workload_keys = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.worker_list = [w.strip() for w in args.workers.split(",") if w.strip()]
    args.workers_given = args.workers != ",".join(WORKERS)
    for w in args.workload_keys:
        if w not in WORKLOADS and w not in ("w4", "e", "g"):
            p.error(f"unknown workload {w!r}; expected w1, w2, w3, w4, e or g")
    for w in args.worker_list:
        if w not in WORKERS:
            p.error(f"unknown worker {w!r}; expected one of {', '.join(WORKERS)}")
    return args


def write_report(out_dir: Path, meta: dict[str, Any], records: list[dict[str, Any]],
                 edge_records: list[dict[str, Any]], publish: bool) -> str:
    """summary.md and summary.json in `out_dir`; with `publish`, results/latest.md and the README.
    W4's records (`workload == "w4"`) have their own table."""
    inflight_records = [r for r in records if r["workload"] == "w4"]
    records = [r for r in records if r["workload"] != "w4"]
    table = report.markdown(meta, records, edge_records, inflight_records)
    (out_dir / "summary.md").write_text(table)
    (out_dir / "summary.json").write_text(json.dumps(
        {"meta": meta, "workloads": report.summarize(records), "edge": report.summarize_edge(edge_records),
         "inflight": report.summarize_inflight(inflight_records)},
        indent=2))
    if publish:
        (BENCH / "results" / "latest.md").write_text(table)
        report.update_readme(BENCH / "README.md", table, str(out_dir.resolve().relative_to(BENCH)))
    return table


def rebuild_report(out_dir: Path) -> int:
    meta = json.loads((out_dir / "meta.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*-*.json")) if p.name != "meta.json"]
    records = [r for r in runs if r.get("workload") != "e"]
    edge_records = [r for r in runs if r.get("workload") == "e"]
    publish = meta["mode"] == "full" and out_dir.resolve().parent == (BENCH / "results").resolve() \
        and not out_dir.name.startswith("profile-") and meta.get("complete", True)
    print(write_report(out_dir, meta, records, edge_records, publish))
    return 0


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.report:
        return rebuild_report(args.report)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    experiment = args.perf or args.edgeflow_env or args.otlp or args.encryption or args.grpc_compression != "none"
    default_dir = "quick" if args.quick else (f"profile-{stamp}" if experiment else stamp)
    out_dir = args.out or BENCH / "results" / default_dir
    if args.quick and out_dir.exists() and out_dir.name == "quick":
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "edgeflow" in args.worker_list and not args.edgeflow_bin.exists():
        print(f"bench: {args.edgeflow_bin} does not exist; build it first", file=sys.stderr)
        return 2
    # Bounded so a stuck worker fails its run instead of the whole session.
    args.timeout_s = 90.0 if args.quick else 600.0
    meta = {
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "workers": args.worker_list,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "limits": LIMITS,
        "limits_text": ", ".join(f"{k} = {v}" for k, v in LIMITS.items()),
        "machine": machine(),
        "load_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions(args.edgeflow_bin),
        "stub_delay_ms": STUB_DELAY_MS,
        "edgeflow_bin": str(args.edgeflow_bin),
        "edgeflow_env": args.edgeflow_env,
        "otlp": args.otlp,
        "encryption": args.encryption,
        "grpc_compression": args.grpc_compression,
        # Every workload and worker ran: only such a run replaces the published tables.
        "complete": set(args.workload_keys) >= set(DEFAULT_WORKLOADS) and set(args.worker_list) == set(WORKERS),
    }
    meta["versions_text"] = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))

    records: list[dict[str, Any]] = []
    edge_records: list[dict[str, Any]] = []
    passed = failed = 0
    started = time.monotonic()
    try:
        for key in args.workload_keys:
            for rep in range(1, args.reps + 1):
                if key == "g":
                    rec = await gateway.run(args.edge_n, args.edgeflow_bin, out_dir / "logs" / f"g-{rep}")
                    rec["rep"] = rep
                    label = f"g #{rep}"
                    summary = (f"added p50 {rec['added_ms']['p50']:.2f} ms, p99 {rec['added_ms']['p99']:.2f} ms "
                               f"(direct HTTP p50 {rec['direct_ms']['p50']:.2f}, gRPC {rec['grpc_ms']['p50']:.2f}, "
                               f"gateway {rec['gateway_ms']['p50']:.2f}), "
                               f"{rec['gateway_cpu_ms_per_request']:.3f} CPU-ms/request, peak RSS "
                               f"{rec['gateway_peak_rss_mib']:.1f} MiB; answered by itself: p50 "
                               f"{rec['refused_ms']['p50']:.2f} ms, {rec['refused_cpu_ms_per_request']:.3f} CPU-ms"
                               if rec["ok"] else "; ".join(rec["errors"])[:600])
                    (out_dir / f"g-{rep}.json").write_text(json.dumps(rec, indent=2))
                    passed, failed = (passed + 1, failed) if rec["ok"] else (passed, failed + 1)
                    print(f"bench: {label}: {summary}", file=sys.stderr, flush=True)
                    continue
                if key == "w4":
                    n = args.n or (inflight.N_QUICK if args.quick else inflight.N_FULL)
                    # The quick run checks W4's harness on edgeflow alone, to stay under a minute
                    # (the peers' `http.call` is the code W2 runs), unless --workers names them.
                    w4_workers = ["edgeflow"] if args.quick and not args.workers_given else args.worker_list
                    for worker in w4_workers:
                        rec = await inflight.run(worker, rep, args, n, out_dir)
                        records.append(rec)
                        (out_dir / f"w4-{worker}-{rep}.json").write_text(json.dumps(rec, indent=2))
                        passed, failed = (passed + 1, failed) if rec["ok"] else (passed, failed + 1)
                        if rec["ok"]:
                            detail = (f"held {rec['held']}, RSS {rec['idle_rss_mib']:.1f} → {rec['holding_rss_mib']:.1f} MiB "
                                      f"({rec['rss_kib_per_inflight']:.1f} KiB/activity), "
                                      f"{rec['accumulate_cpu_ms_per_activity']:.3f} CPU-ms/activity to start, "
                                      f"{rec['hold_cpu_ms_per_s']:.1f} CPU-ms/s holding")
                        else:
                            detail = "FAILED: " + "; ".join(rec["errors"])[:600]
                        print(f"bench: w4 {worker} #{rep}: {detail}", file=sys.stderr, flush=True)
                    continue
                if key == "e":
                    rec = await asyncio.to_thread(edge.run, args.edge_n, out_dir / "logs" / f"e-{rep}")
                    rec["rep"] = rep
                    edge_records.append(rec)
                    label = f"e #{rep}"
                    summary = (f"added p50 {rec['added_ms']['p50']:.2f} ms, p99 {rec['added_ms']['p99']:.2f} ms"
                               if rec["ok"] else "; ".join(rec["errors"])[:400])
                else:
                    workload = WORKLOADS[key]
                    n = args.n or (workload.n_quick if args.quick else workload.n_full)
                    for worker in [w for w in args.worker_list if w in workload.workers]:
                        rec = await run_one(workload, worker, rep, args, n, out_dir)
                        records.append(rec)
                        (out_dir / f"{key}-{worker}-{rep}.json").write_text(json.dumps(rec, indent=2))
                        passed, failed = (passed + 1, failed) if rec["ok"] else (passed, failed + 1)
                        if rec["ok"]:
                            detail = (f"{rec['workflows_per_s']:.1f} wf/s, worker {rec['worker_cpu_ms_per_workflow']:.2f} "
                                      f"CPU-ms/wf, server {rec['server_cpu_ms_per_workflow']:.1f}, peak RSS "
                                      f"{rec['worker_peak_rss_mib']:.1f} MiB, p50 {rec['latency_ms']['p50']:.0f} ms")
                        else:
                            detail = "FAILED: " + "; ".join(rec["errors"])[:600]
                        print(f"bench: {key} {worker} #{rep}: {detail}", file=sys.stderr, flush=True)
                    continue
                (out_dir / f"e-{rep}.json").write_text(json.dumps(rec, indent=2))
                passed, failed = (passed + 1, failed) if rec["ok"] else (passed, failed + 1)
                print(f"bench: {label}: {summary}", file=sys.stderr, flush=True)
    finally:
        stop_all()

    table = write_report(out_dir, meta, records, edge_records,
                         publish=not args.quick and not experiment and args.out is None and meta["complete"])
    print(table)
    print(f"bench: results in {out_dir} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    # One word and a colon before the counts: the closing-line form test runners are read by.
    counts = f"{passed} passed, {failed} failed"
    print(f"bench: {counts}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
