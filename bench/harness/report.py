"""Turns raw runs into medians, spread, ratios against the peers, the issue's targets, and the
markdown table per workload (`results/latest.md`, and the block between the markers in
bench/README.md)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .inflight import counts
from .workloads import WORKLOADS

PEERS = ("python", "typescript")

# Per workload table: (record key, column title, decimals, lower is better)
COLUMNS = [
    ("workflows_per_s", "workflows/s", 1, False),
    ("activities_per_s", "activities/s", 1, False),
    ("worker_cpu_ms_per_workflow", "worker CPU-ms/wf", 2, True),
    ("server_cpu_ms_per_workflow", "server CPU-ms/wf", 1, True),
    ("worker_peak_rss_mib", "peak RSS MiB", 1, True),
    ("latency_p50_ms", "p50 ms", 0, True),
    ("latency_p95_ms", "p95 ms", 0, True),
    ("latency_p99_ms", "p99 ms", 0, True),
]

# The targets, as (key, title, bound on edgeflow ÷ the better peer, "max"/"min").
TARGETS = [
    ("worker_cpu_ms_per_workflow", "worker CPU per workflow", 0.35, "max"),
    ("worker_peak_rss_mib", "peak RSS", 0.40, "max"),
    ("workflows_per_s", "throughput", 1.00, "min"),
]
EDGE_TARGETS = {"p50": 5.0, "p99": 20.0}
# latency.mjs --profile: requests the edge refuses before calling Temporal, each adding one step.
PROFILE_ROWS = [
    ("unauthenticated_401", "no token → 401 (routing, settings)"),
    ("jwt_verified_404", "valid JWT, unknown workflow → 404 (+ JWT verification)"),
    ("invalid_body_422", "valid JWT, invalid body → 422 (+ body read, schema validation)"),
]


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """A run record with its latency percentiles lifted to top-level keys."""
    out = dict(record)
    for p, v in (record.get("latency_ms") or {}).items():
        out[f"latency_{p}_ms"] = v
    return out


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """{workload: {worker: {metric: stats}}} over the runs that completed every workflow, plus
    edgeflow's ratios to each peer and the target checks."""
    out: dict[str, Any] = {}
    for key in [k for k in WORKLOADS if any(r["workload"] == k for r in records)]:
        runs = [flat(r) for r in records if r["workload"] == key]
        per_worker: dict[str, Any] = {}
        for worker in dict.fromkeys(r["worker"] for r in runs):
            ok = [r for r in runs if r["worker"] == worker and r["ok"]]
            per_worker[worker] = {
                "runs": len([r for r in runs if r["worker"] == worker]),
                "ok_runs": len(ok),
                **{col: stats([r[col] for r in ok if r.get(col) is not None]) for col, *_ in COLUMNS},
            }
        ratios = {}
        targets = []
        ef = per_worker.get("edgeflow")
        peers = {p: per_worker[p] for p in PEERS if p in per_worker and per_worker[p]["ok_runs"]}
        if ef and ef["ok_runs"] and peers:
            for col, *_ in COLUMNS:
                ratios[col] = {
                    p: ef[col]["median"] / v[col]["median"] if ef[col] and v[col] and v[col]["median"] else None
                    for p, v in peers.items()
                }
            for col, title, bound, kind in TARGETS:
                medians = {p: v[col]["median"] for p, v in peers.items() if v[col]}
                if not medians or not ef[col]:
                    continue
                better_peer = (min if kind == "max" else max)(medians, key=medians.get)
                ratio = ef[col]["median"] / medians[better_peer]
                met = ratio <= bound if kind == "max" else ratio >= bound
                targets.append({"metric": col, "title": title, "better_peer": better_peer,
                                "ratio": ratio, "bound": bound, "kind": kind, "met": met})
        out[key] = {"workers": per_worker, "ratios": ratios, "targets": targets}
    return out


# W4's table: (record key, column title, decimals).
INFLIGHT_COLUMNS = [
    ("held", "held at once", 0),
    ("idle_rss_mib", "idle RSS MiB", 1),
    ("holding_rss_mib", "RSS holding MiB", 1),
    ("rss_kib_per_inflight", "RSS KiB / in-flight", 2),
    ("pss_kib_per_inflight", "PSS KiB / in-flight", 2),
    ("accumulate_cpu_ms_per_activity", "CPU-ms to put one in flight", 3),
    ("hold_cpu_ms_per_s", "CPU-ms/s while holding", 2),
    ("hold_cpu_ms_per_s_per_1000", "CPU-ms/s per 1,000 held (− idle)", 3),
    ("release_cpu_ms_per_activity", "CPU-ms to complete one after release", 3),
    ("server_hold_cpu_ms_per_s", "server CPU-ms/s while holding", 1),
    ("accumulate_s", "s to reach N", 0),
]


def summarize_inflight(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{worker: {metric: stats}} over W4's runs that completed every held activity."""
    if not records:
        return None
    out: dict[str, Any] = {}
    for worker in dict.fromkeys(r["worker"] for r in records):
        runs = [r for r in records if r["worker"] == worker]
        ok = [r for r in runs if counts(r)]
        out[worker] = {"runs": len(runs), "ok_runs": len(ok),
                       **{col: stats([r[col] for r in ok if r.get(col) is not None]) for col, *_ in INFLIGHT_COLUMNS}}
    return out


def inflight_markdown(records: list[dict[str, Any]]) -> list[str]:
    s = summarize_inflight(records)
    if not s:
        return []
    r0 = records[0]
    loads = ", ".join(f"{r['worker']} #{r['rep']} {r['load_at_start'][0]:.1f}" for r in records)
    lines = [
        f"## W4 `inflight` — N = {r0['n']}: `http.call`s held by a local service until released; what "
        "each held activity costs the worker", "",
        f"Each worker: max_concurrent_activities = {r0['limits']['max_concurrent_activities']} and as many "
        f"HTTP connections; the driver's `w4-hold` workflows ({r0['per_driver_workflow']} activities each) "
        "schedule the activities on the worker's task queue. Idle baseline after the warm-up over "
        f"{r0['idle_window_s']:.0f} s; holding window {r0['hold_window_s']:.0f} s; RSS and PSS per in-flight "
        "activity = (holding − idle) ÷ held. Load average (1 min) at each run's start: " + loads + ".", "",
        "| worker | runs ok | " + " | ".join(c[1] for c in INFLIGHT_COLUMNS) + " |",
        "|---|---|" + "---|" * len(INFLIGHT_COLUMNS),
    ]
    for worker, v in s.items():
        cells = [_cell(v[col], d) for col, _, d in INFLIGHT_COLUMNS]
        lines.append(f"| {worker} | {v['ok_runs']}/{v['runs']} | " + " | ".join(cells) + " |")
    ef = s.get("edgeflow")
    peers = [p for p in PEERS if p in s and s[p]["ok_runs"]]
    if ef and ef["ok_runs"] and peers:
        lines += ["", "edgeflow ÷ peer (medians; below 1 is better):", "",
                  "| metric | " + " | ".join(f"÷ {p}" for p in peers) + " |", "|---|" + "---|" * len(peers)]
        ratio_cols = ("rss_kib_per_inflight", "pss_kib_per_inflight", "accumulate_cpu_ms_per_activity",
                      "hold_cpu_ms_per_s", "release_cpu_ms_per_activity")
        for col, title, _ in [c for c in INFLIGHT_COLUMNS if c[0] in ratio_cols]:
            cells = []
            for p in peers:
                a, b = ef[col], s[p][col]
                cells.append(f"{a['median'] / b['median']:.2f}×" if a and b and b["median"] > 0 else "–")
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    for r in records:
        if not counts(r):
            lines.append(f"\n- run {r['worker']} #{r['rep']} did not count: {'; '.join(r['errors'][:3])}")
        for note in r.get("notes", []):
            lines.append(f"\n- run {r['worker']} #{r['rep']}: {note}")
    lines.append("")
    return lines


def summarize_edge(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in records if r.get("ok")]
    if not records:
        return None
    res: dict[str, Any] = {"runs": len(records), "ok_runs": len(ok)}
    for part in ("direct_ms", "edge_ms", "added_ms", "edge_healthz_ms"):
        for p in ("p50", "p99"):
            res[f"{part}.{p}"] = stats([r[part][p] for r in ok if part in r])
    for key, _ in PROFILE_ROWS:
        for p in ("p50", "p99"):
            res[f"profile.{key}.{p}"] = stats([r["profile_ms"][key][p] for r in ok if key in r.get("profile_ms", {})])
    res["targets"] = [
        {"title": f"added latency {p}", "value": res[f"added_ms.{p}"]["median"], "bound": bound,
         "met": res[f"added_ms.{p}"]["median"] <= bound}
        for p, bound in EDGE_TARGETS.items() if res.get(f"added_ms.{p}")
    ]
    return res


def _cell(s: dict[str, float] | None, decimals: int) -> str:
    if not s:
        return "–"
    fmt = f"{{:.{decimals}f}}"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def markdown(meta: dict[str, Any], records: list[dict[str, Any]], edge_records: list[dict[str, Any]],
             inflight_records: list[dict[str, Any]] | None = None) -> str:
    summary = summarize(records)
    lines = [
        f"# edgeflow benchmarks — {meta['started_at']}",
        "",
        f"- Mode: {meta['mode']}; {meta['reps']} repetition(s), workers alternated "
        f"({' → '.join(meta['workers'])} each repetition); a fresh in-memory Temporal dev server "
        f"and a fresh task queue per run; {meta['warmup']} warm-up workflows per run, not measured.",
        f"- Driver: one Python SDK client, at most {meta['concurrency']} workflows in flight; a run "
        "counts only if every workflow completed with the right result.",
        f"- Slot limits, identical for every worker: {meta['limits_text']}.",
        f"- Machine: {meta['machine']}; load average at start {meta['load_at_start']}.",
        f"- Versions: {meta['versions_text']}."
        + (f" edgeflow binary: `{meta['edgeflow_bin']}`." if meta.get("edgeflow_bin") else "")
        + (f" Extra edgeflow environment: `{' '.join(meta['edgeflow_env'])}`." if meta.get("edgeflow_env") else "")
        + (" Traces exported over OTLP/gRPC to testkit's receiver (`--otlp`)." if meta.get("otlp") else "")
        + (f" Peers' gRPC compression: {meta['grpc_compression_peers']}." if meta.get("grpc_compression_peers", "gzip") != "gzip" else "")
        + (f"\n- Worker-to-server gRPC compression, the same for every worker: {meta['grpc_compression']} "
           "(every SDK defaults to gzip; the server is on loopback, where gzip only costs CPU)." if "grpc_compression" in meta else ""),
        "- Cells: median over the repetitions (min–max). CPU is utime+stime of every thread of the "
        "process over the measured window (/proc/PID/stat); peak RSS is the worker's VmHWM, start-up "
        "included; latency is start call → result as the driver sees it.",
        "",
    ]
    if meta["mode"] == "quick":
        lines += ["> A quick run checks that the harness works: tiny N, one repetition, a debug edgeflow "
                  "build. Its figures are not comparisons.", ""]
    for key, s in summary.items():
        w = WORKLOADS[key]
        n = next((r["n"] for r in records if r["workload"] == key), 0)
        lines += [f"## {key.upper()} `{w.name}` — N = {n}: {w.blurb}", ""]
        lines.append("| worker | runs ok | " + " | ".join(c[1] for c in COLUMNS) + " |")
        lines.append("|---|---|" + "---|" * len(COLUMNS))
        for worker, v in s["workers"].items():
            cells = [_cell(v[col], d) for col, _, d, _ in COLUMNS]
            lines.append(f"| {worker} | {v['ok_runs']}/{v['runs']} | " + " | ".join(cells) + " |")
        if s["ratios"]:
            lines += ["", "edgeflow ÷ peer (medians; below 1 is better for CPU, RSS and latency, above 1 for rates):", ""]
            peers = list(next(iter(s["ratios"].values())).keys())
            lines.append("| metric | " + " | ".join(f"÷ {p}" for p in peers) + " |")
            lines.append("|---|" + "---|" * len(peers))
            for col, title, _, _ in COLUMNS:
                r = s["ratios"][col]
                lines.append(f"| {title} | " + " | ".join("–" if r[p] is None else f"{r[p]:.2f}×" for p in peers) + " |")
        if s["targets"]:
            lines += ["", "| target (vs the better peer) | edgeflow ÷ better peer | bound | met |", "|---|---|---|---|"]
            for t in s["targets"]:
                sign = "≤" if t["kind"] == "max" else "≥"
                lines.append(f"| {t['title']} (better: {t['better_peer']}) | {t['ratio']:.2f}× | {sign} {t['bound']:.2f}× | "
                             f"{'yes' if t['met'] else '**no**'} |")
        failed = [r for r in records if r["workload"] == key and not r["ok"]]
        for r in failed:
            lines.append(f"\n- run {r['worker']} #{r['rep']} did not count: {'; '.join(r['errors'][:3])}")
        lines.append("")
    lines += inflight_markdown(inflight_records or [])
    e = summarize_edge(edge_records)
    if e:
        n = edge_records[0].get("starts", "?")
        # Older runs went through `wrangler dev` and do not name their runtime.
        runtime = edge_records[0].get("runtime", "wrangler dev / workerd")
        lines += [f"## E `edge` — {n} starts through the edge Worker ({runtime}) vs {n} direct starts on "
                  "Temporal's HTTP API (edge/e2e/latency.mjs, sequential, interleaved)", "",
                  "| | p50 ms | p99 ms |", "|---|---|---|"]
        for part, title in (("direct_ms", "direct"), ("edge_ms", "through the edge"), ("added_ms", "added by the edge"),
                            ("edge_healthz_ms", "`/healthz` (transport alone, no Temporal call)")):
            lines.append(f"| {title} | {_cell(e[f'{part}.p50'], 2)} | {_cell(e[f'{part}.p99'], 2)} |")
        for key, title in PROFILE_ROWS:
            if e.get(f"profile.{key}.p50"):
                lines.append(f"| {title} | {_cell(e[f'profile.{key}.p50'], 2)} | {_cell(e[f'profile.{key}.p99'], 2)} |")
        lines += ["", "| target | median | bound | met |", "|---|---|---|---|"]
        for t in e["targets"]:
            lines.append(f"| {t['title']} | {t['value']:.2f} ms | ≤ {t['bound']:.0f} ms | {'yes' if t['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


README_START = "<!-- bench:latest:start -->"
README_END = "<!-- bench:latest:end -->"


def update_readme(readme: Path, table_md: str, results_rel: str) -> None:
    """Replaces the block between the markers in bench/README.md with the latest tables."""
    if not readme.exists():
        return
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    body = table_md.split("\n", 1)[1].lstrip("\n")  # the README has its own heading
    block = f"{README_START}\n_From `{results_rel}` (also in `results/latest.md`)._\n\n{body}{README_END}"
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    readme.write_text(before + block.replace("\n## ", "\n### ") + after)
