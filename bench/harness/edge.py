"""Workload E: the edge's added latency, measured by the edge's own script.

`edge/e2e/latency.mjs N` starts a Temporal dev server, a token issuer and the edge Worker in
workerd, run through Miniflare's API by `edge/scripts/serve-workerd.mjs` without `wrangler dev`:
the bundle `wrangler deploy` would upload, wrangler.jsonc's bindings (vars, KV, Durable Objects)
and the e2e tests' variables and secrets, with clients connected straight to a socket workerd
listens on (no wrangler dev proxy worker, no Miniflare entry worker, no node process in the path,
as on Cloudflare). It then makes N starts through the edge Worker and N direct starts on
Temporal's HTTP API, interleaved and sequential (each request sent once the previous one's
background work has settled), plus N `/healthz` requests to the edge Worker (transport alone),
and prints one JSON line with p50/p99 of each, their difference (`added_ms`) and the `runtime`;
with `--profile`, also the refused requests that split the edge's own time (`profile_ms`).
The harness runs it and keeps that line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from .servers import ROOT, TEMPORAL_CLI

EDGE = ROOT / "edge"


def run(n: int, log_dir: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"workload": "e", "name": "edge", "starts": n, "ok": False, "errors": [],
                              "load_at_start": [round(x, 2) for x in os.getloadavg()]}
    if not (EDGE / "node_modules").is_dir():
        record["errors"].append("edge/node_modules is missing: run `npm ci` in edge/ (scripts/setup does)")
        return record
    env = dict(os.environ, CI="true", WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false",
               TEMPORAL_CLI=str(TEMPORAL_CLI), NO_COLOR="1")
    # The script stops the Temporal server and the edge Worker (workerd) it starts; on a time-out
    # the harness stops it and every process under it, by PID.
    # --profile: also requests the edge refuses before any Temporal call (401, 404, 422), to split
    # the edge's own time from the hop to Temporal.
    proc = subprocess.Popen(["node", "e2e/latency.mjs", str(n), "--profile"], cwd=EDGE, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        stdout, stderr = proc.communicate()
        record["errors"].append(f"edge/e2e/latency.mjs did not finish in {timeout_s:.0f} s")
        (log_dir / "latency.log").write_text(f"{stdout}\n{stderr}")
        return record
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    (log_dir / "latency.log").write_text(done.stdout + "\n" + done.stderr)
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), None)
    if done.returncode != 0 or line is None:
        record["errors"].append(f"edge/e2e/latency.mjs exited {done.returncode}: {done.stderr.strip()[-600:]}")
        return record
    record.update(json.loads(line))
    record["ok"] = True
    return record


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
