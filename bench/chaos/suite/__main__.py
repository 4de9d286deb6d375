"""`bench/chaos/run [--quick] [--n N] [--experiments a,b] [--edgeflow-bin PATH]`

Runs the flagship `order` workflow N at a time against real parts while each experiment
breaks something (bench/chaos/README.md lists them), then checks every side effect at its
source. Prints one table row per experiment and writes `summary.md` / `summary.json` (and the
processes' logs) under `results/<timestamp>/` (quick runs: `results/quick/`); a full run also
updates `results/latest.md` and the table in bench/chaos/README.md. Exits 1 if any assertion
failed; the last line says `chaos: X passed, Y failed`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.__main__ import machine
from harness.procs import stop_all
from harness.servers import ROOT, start_postgres

from . import report
from .checks import evaluate
from .driver import Progress, Temporal, history_facts, start_orders, watch
from .experiments import BY_KEY, EXPERIMENTS, Ctx, Experiment
from .stack import CHAOS, Stack


async def run_experiment(exp: Experiment, args: argparse.Namespace, postgres, out_dir: Path) -> dict[str, Any]:
    print(f"chaos: {exp.key} (N = {args.n}): {exp.does}", flush=True)
    record: dict[str, Any] = {"experiment": exp.key, "does": exp.does, "n": args.n,
                              "demo_failure": exp.demo_failure, "worker_env": exp.worker_env,
                              "started_at": dt.datetime.now().isoformat(timespec="seconds")}
    stack = Stack(exp.key, args.edgeflow_bin, out_dir / "logs" / exp.key, postgres, demo_failure=exp.demo_failure,
                  receiver_fail_first=exp.receiver_fail_first, worker_env=exp.worker_env,
                  services_bin=args.services_bin)
    try:
        await stack.up()
        for _ in range(exp.workers):
            await stack.start_worker()
        temporal = Temporal(stack.server.address)
        ids = [f"{exp.key}-{i}" for i in range(args.n)]
        progress = Progress(args.n)
        ctx = Ctx(stack, progress)
        deadline = time.monotonic() + args.deadline_s
        ctx.t0 = time.monotonic()
        await start_orders(temporal, stack.task_queue, ids, deadline)
        ctx.note(f"{args.n} orders started")
        scenario = asyncio.ensure_future(exp.scenario(ctx)) if exp.scenario else None
        all_closed = await watch(temporal, progress, deadline)
        # Time to drain: from the last thing the experiment did (or the last start) to the last
        # order closed.
        last_action = ctx.events[-1][0]
        if scenario:
            if not scenario.done():
                scenario.cancel()
                ctx.note("the orders closed before the experiment's last fault")
            await asyncio.gather(scenario, return_exceptions=True)
            if scenario.done() and not scenario.cancelled() and scenario.exception():
                raise scenario.exception()
        ctx.note("every order closed" if all_closed else f"deadline: {args.n - progress.closed} still running")
        runs = await history_facts(temporal, ids, time.monotonic() + 300)
        record.update(await asyncio.to_thread(evaluate, exp, ids, runs, stack, ctx.facts))
        record["drain_s"] = round(all_closed - ctx.t0 - last_action, 1) if all_closed else None
        record["total_s"] = round((all_closed or time.monotonic()) - ctx.t0, 1)
        record["stop_s"] = ctx.facts.get("stop_s")
        record["drain_log"] = ctx.facts.get("drain_log")
        record["events"] = ctx.events
        record["workers"] = [{"name": w.name, "ended": w.ended or "ran to the end"} for w in stack.workers]
        if not record["ok"]:
            record["worker_logs"] = stack.worker_logs()
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc()
        record["ok"] = False
        try:
            record["worker_logs"] = stack.worker_logs()
        except Exception:
            pass
    finally:
        await asyncio.to_thread(stack.down)
    return record


def versions(edgeflow_bin: Path) -> str:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    rev = cmd("git", "rev-parse", "--short", "HEAD")
    dirty = cmd("git", "status", "--porcelain", "--untracked-files=no")
    profile = "release" if "release" in str(edgeflow_bin) else "debug"
    return f"{rev}{'+uncommitted' if dirty else ''} ({profile} build)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tens of orders and the experiments that fit in about 3 minutes, debug build")
    p.add_argument("--n", type=int, help="orders per experiment (default 1000, quick 30)")
    p.add_argument("--experiments", help="comma-separated keys (default: all; quick: those marked quick): "
                   + ", ".join(e.key for e in EXPERIMENTS))
    p.add_argument("--edgeflow-bin", type=Path,
                   help="edgeflow binary (default target/release/edgeflow, quick: target/debug/edgeflow)")
    p.add_argument("--services-bin", type=Path,
                   help="the binary that serves the demo services (default: --edgeflow-bin); lets a worker "
                        "built before the services counted their calls be measured")
    p.add_argument("--out", type=Path, help="results folder (default results/<timestamp>, quick: results/quick)")
    args = p.parse_args(argv)
    args.n = args.n or (30 if args.quick else 1000)
    args.deadline_s = 150 + args.n * 0.6
    if args.experiments:
        keys = [k.strip() for k in args.experiments.split(",") if k.strip()]
        for k in keys:
            if k not in BY_KEY:
                p.error(f"unknown experiment {k!r}; expected one of {', '.join(BY_KEY)}")
        args.selected = [BY_KEY[k] for k in keys]
    else:
        args.selected = [e for e in EXPERIMENTS if e.quick or not args.quick]
    args.edgeflow_bin = (args.edgeflow_bin or ROOT / "target" / ("debug" if args.quick else "release")
                         / "edgeflow").absolute()
    args.services_bin = (args.services_bin or args.edgeflow_bin).absolute()
    # The dev server is started through this binary too (`edgeflow dev server`, harness/servers.py).
    os.environ["EDGEFLOW_BIN"] = str(args.edgeflow_bin)
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.edgeflow_bin.exists():
        print(f"chaos: {args.edgeflow_bin} does not exist; build it first", file=sys.stderr)
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or CHAOS / "results" / ("quick" if args.quick else stamp)
    if args.quick and out_dir.exists() and out_dir.name == "quick":
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "mode": "quick" if args.quick else "full",
        "started_at": dt.datetime.now().isoformat(timespec="minutes"),
        "n": args.n,
        "edgeflow": versions(args.edgeflow_bin),
        "edgeflow_bin": str(args.edgeflow_bin),
        "services_bin": str(args.services_bin),
        "machine": machine(),
    }
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    postgres = None
    try:
        postgres = await asyncio.to_thread(start_postgres, out_dir / "logs")
        for exp in args.selected:
            record = await run_experiment(exp, args, postgres, out_dir)
            records.append(record)
            (out_dir / f"{exp.key}.json").write_text(json.dumps(record, indent=2, default=str))
            print(report.terminal([record]).splitlines()[-1], flush=True)
            if not record["ok"]:
                for a in record.get("assertions", []):
                    if not a["ok"]:
                        print(f"chaos:   FAILED {a['name']}: {a['detail']}", flush=True)
                if "error" in record:
                    print(record.get("traceback", ""), flush=True)
    finally:
        if postgres:
            postgres.stop()
        stop_all()

    table = report.markdown(meta, records)
    (out_dir / "summary.md").write_text(table)
    (out_dir / "summary.json").write_text(json.dumps({"meta": meta, "experiments": records}, indent=2, default=str))
    if not args.quick and args.out is None and not args.experiments and args.n == 1000:
        (CHAOS / "results" / "latest.md").write_text(table)
        report.update_readme(CHAOS / "README.md", table, str(out_dir.relative_to(CHAOS)))
    print()
    print(report.terminal(records))
    print()
    print(f"chaos: results in {out_dir} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    passed = sum(1 for r in records if r["ok"])
    print(f"chaos: {passed} passed, {len(records) - passed} failed")
    return 0 if passed == len(records) else 1


def interrupted(_signum, _frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM (a CI job cancelled; a background run stopped) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
