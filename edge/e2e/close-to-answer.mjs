// How long after Temporal closes a run does a caller holding `Prefer: wait` hear of it?
// Measured on real processes (Temporal dev server, the edge in workerd, no worker): N runs are
// started through the edge, a GET with Prefer: wait is parked on each, the run is terminated
// in Temporal, and the time from the run's close (Temporal's closeTime) to the answer is taken.
// Two set-ups: completion callbacks on (callers park on the run's Durable Object until the
// callback, then the edge reads the close event) and off (callers long-poll the close event).
// Usage: node e2e/close-to-answer.mjs [N=20]
import { startStack, temporalApi } from "./harness.mjs";

const n = Number(process.argv[2] ?? 20);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

for (const callbacks of [true, false]) {
  const stack = await startStack({ callbacks });
  try {
    const api = temporalApi(stack.temporal);
    const token = await stack.issuer.mint({ sub: "measure", roles: ["customer"] });
    const auth = { authorization: `Bearer ${token}` };
    const lat = [];
    for (let i = 0; i < n; i++) {
      const body = JSON.stringify({ order_id: `m-${i}`, customer_email: "m@example.com", items: [{ sku: "S", quantity: 1, unit_price_cents: 5 }], amount_cents: 5, currency: "EUR" });
      const started = await (await fetch(`${stack.edge.url}/v1/workflows/order`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body })).json();
      const id = started.workflow_id;
      const waiting = fetch(`${stack.edge.url}/v1/runs/${id}`, { headers: { ...auth, prefer: "wait=20" } }).then(async (r) => ({ at: Date.now(), body: await r.json() }));
      await new Promise((r) => setTimeout(r, 300));
      await api.terminate(id, "measured");
      const { at, body: view } = await waiting;
      if (view.status !== "terminated") throw new Error(`run ${id}: ${JSON.stringify(view)}`);
      const closed = Date.parse((await api.describe(id)).body.workflowExecutionInfo.closeTime);
      lat.push(at - closed);
    }
    console.log(`${callbacks ? "callbacks on (Durable Object + callback)" : "callbacks off (close-event long poll)"}: n=${n} close→answer p50 ${pct(lat, 50)} ms, p90 ${pct(lat, 90)} ms, max ${Math.max(...lat)} ms`);
  } finally {
    await stack.stop();
  }
}
