"""The results table, in the terminal and as markdown, and the README's copy of the latest one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

COLUMNS = ["experiment", "N", "closed", "duplicates", "failed-but-charged", "workflow-task timeouts",
           "email copies", "time to drain", "result"]


def row(r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [r["experiment"], str(r.get("n", "?")), "–", "–", "–", "–", "–", "–", f"ERROR: {r['error'][:80]}"]
    statuses = r["statuses"]
    closed = f"{r['closed']}/{r['n']}"
    detail = ", ".join(f"{c} {s}" for s, c in sorted(statuses.items()) if s != "running")
    dups = sum(r["duplicates"].values())
    drain = f"{r['drain_s']:.1f} s" if r.get("drain_s") is not None else "did not drain"
    if r.get("stop_s") is not None:
        drain += f" (stop {r['stop_s']:.1f} s)"
    wft = str(r["workflow_task_timeouts"])
    if r["workflow_task_failures"]:
        wft += f" (+{r['workflow_task_failures']} failed)"
    failed = [a["name"] for a in r["assertions"] if not a["ok"]]
    return [
        r["experiment"], str(r["n"]), f"{closed} ({detail})", str(dups),
        f"{r['failed_but_charged']} (reserved: {r['failed_but_reserved']})", wft,
        str(r["emails"]["copies"]), drain, "pass" if r["ok"] else "FAIL: " + "; ".join(failed),
    ]


def markdown(meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    lines = [
        f"_{meta['mode']} run, {meta['started_at']}; edgeflow {meta['edgeflow']}; {meta['machine']}._",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(r)) + " |" for r in records]
    lines.append("")
    failures = [(r["experiment"], a) for r in records if "assertions" in r for a in r["assertions"] if not a["ok"]]
    if failures:
        lines.append("Failed assertions:")
        lines.append("")
        for exp, a in failures:
            lines.append(f"- **{exp}**: {a['name']}: {a['detail'] or a['count']}")
        lines.append("")
    mailed = [r for r in records if "emails" in r]
    if mailed:
        lines += [
            "SMTP window, ms, p50 / p99 / max over every message (a message sent twice counts its retry):",
            "",
            "| experiment | the server took it → ledger row | its envelope's last RCPT → ledger row |",
            "|---|---|---|",
        ]
        for r in mailed:
            e = r["emails"]
            lines.append(f"| {r['experiment']} | {spread_text(e['smtp_window_ms'])} | "
                         f"{spread_text(e.get('smtp_exchange_to_ledger_ms'))} |")
        lines.append("")
    return "\n".join(lines)


def spread_text(w: dict[str, Any] | None) -> str:
    if not w or not w.get("n"):
        return "–"
    return f"{fmt(w['p50'])} / {fmt(w['p99'])} / {fmt(w['max'])}"


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def terminal(records: list[dict[str, Any]]) -> str:
    rows = [COLUMNS] + [row(r) for r in records]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    out = []
    for i, r in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(r)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def update_readme(readme: Path, table: str, source: str) -> None:
    """Replaces the block between the chaos markers in bench/chaos/README.md."""
    text = readme.read_text()
    block = f"<!-- chaos:latest:start -->\n_From `{source}` (also in `results/latest.md`)._\n\n{table}\n<!-- chaos:latest:end -->"
    new = re.sub(r"<!-- chaos:latest:start -->.*?<!-- chaos:latest:end -->", lambda _: block, text, flags=re.S)
    readme.write_text(new)
