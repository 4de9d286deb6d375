// Added latency of the edge over a direct start through Temporal's HTTP API, on
// loopback: N starts each way (sequential, after a warm-up), p50 and p99.
// Usage: node e2e/latency.mjs [N]   (default 200). Prints one JSON line.
import { randomUUID } from "node:crypto";
import { startStack, temporalApi } from "./harness.mjs";

const n = Number(process.argv[2] ?? 200);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const order = () => ({
  order_id: `o-${randomUUID().slice(0, 8)}`,
  customer_email: "bench@example.com",
  items: [{ sku: "SKU-1", quantity: 1, unit_price_cents: 100 }],
  amount_cents: 100,
  currency: "EUR",
});

const stack = await startStack();
try {
  const api = temporalApi(stack.temporal);
  const token = await stack.issuer.mint({ sub: "bench", roles: ["customer"] });
  // The same request the edge sends (memo, search attributes), so only the edge's own work differs.
  const direct = async () => {
    const id = `order-${randomUUID().replaceAll("-", "")}`;
    const requestId = randomUUID();
    const t = performance.now();
    const res = await fetch(`${stack.temporal.httpUrl}/api/v1/namespaces/default/workflows/${id}`, {
      method: "POST",
      headers: { Accept: "application/json+no-payload-shorthand", "Content-Type": "application/json" },
      body: JSON.stringify({
        workflowId: id,
        workflowType: { name: "order" },
        taskQueue: { name: "edgeflow" },
        input: { payloads: [api.encode(order())] },
        requestId,
        identity: "edge:bench",
        workflowIdReusePolicy: "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
        memo: { fields: { edge_subject: api.encode("bench"), edge_email: api.encode("bench@example.com"), edge_roles: api.encode(["customer"]), edge_request_id: api.encode(requestId) } },
        searchAttributes: { indexedFields: { EdgeSubject: api.encode("bench"), EdgeRequestId: api.encode(requestId) } },
      }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`direct start: ${res.status}`);
    return performance.now() - t;
  };
  const health = async () => {
    const t = performance.now();
    const res = await fetch(`${stack.edge.url}/healthz`);
    await res.arrayBuffer();
    return performance.now() - t;
  };
  const viaEdge = async () => {
    const t = performance.now();
    const res = await fetch(`${stack.edge.url}/v1/workflows/order`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(order()),
    });
    await res.arrayBuffer();
    if (res.status !== 202) throw new Error(`edge start: ${res.status}`);
    return performance.now() - t;
  };
  for (let i = 0; i < 20; i++) {
    await direct();
    await viaEdge();
  }
  const d = [];
  const e = [];
  const h = [];
  // Interleaved, so both see the same server state.
  for (let i = 0; i < n; i++) {
    d.push(await direct());
    e.push(await viaEdge());
    h.push(await health());
  }
  const r = (x) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify({
      starts: n,
      direct_ms: { p50: r(pct(d, 50)), p99: r(pct(d, 99)) },
      edge_ms: { p50: r(pct(e, 50)), p99: r(pct(e, 99)) },
      added_ms: { p50: r(pct(e, 50) - pct(d, 50)), p99: r(pct(e, 99) - pct(d, 99)) },
      // Round trip of /healthz through wrangler dev's local proxy: transport, not edge logic.
      edge_healthz_ms: { p50: r(pct(h, 50)), p99: r(pct(h, 99)) },
    }),
  );
} finally {
  await stack.stop();
}
