"""edgeflow's benchmark harness: edgeflow vs Temporal's Python and TypeScript SDK workers.

- `__main__`: the command line (`bench/run`), the run loop (workloads × repetitions × workers).
- `procs`: processes this harness starts (and stops, by PID), free ports, /proc sampling.
- `servers`: a fresh Temporal dev server per run; the HTTP stub for W2 and W4.
- `workers`: how each of the three workers is started and told it is ready.
- `workloads`: W1 `noop`, W2 `io-fanout`, the W3 `order` hook: inputs and result checks.
- `driver`: the one neutral driver (Python SDK client) that starts N workflows, bounded
  concurrency, and awaits every result.
- `inflight`: workload W4, 10,000 `http.call`s held in flight by the stub: RSS and CPU per held
  activity (its driver is a Python SDK workflow scheduling them on the worker's queue).
- `edge`: workload E, through `edge/e2e/latency.mjs`.
- `report`: medians, spread, ratios and targets; `results/latest.md`.
- `stub`: the local HTTP service W2 calls and W4's holds (run as its own process).
"""
