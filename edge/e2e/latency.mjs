// Added latency of the edge Worker over a direct start through Temporal's HTTP API, on
// loopback: N starts each way (sequential, interleaved, after 20 warm-up rounds), p50 and p99.
// Each request goes out 5 ms after the previous one ended, once its background work (the
// edge's waitUntil KV write after a start, Temporal's own after any start) has settled.
//
// The edge Worker runs in workerd through Miniflare's API (scripts/serve-workerd.mjs, via
// harness.mjs startStack({ runtime: "workerd" })): the bundle `wrangler deploy` would
// upload, with wrangler.jsonc's bindings (vars, KV, Durable Objects) and the same env file
// of variables and secrets the e2e tests give `wrangler dev`. Clients connect to a socket
// that workerd itself listens on and that leads straight to the Worker's fetch handler, so
// none of wrangler dev's layer is in the path (its ProxyWorker, a Durable Object in a second
// workerd that also reports every request to node for the log, and Miniflare's entry worker
// in front of each workerd); production on Cloudflare has none of it either. `/healthz` on that socket is the "transport alone"
// line: the loopback HTTP round trip, routing and the access log, no Temporal call.
//
// Usage: node e2e/latency.mjs [N] [--runtime workerd|wrangler] [--profile]
//   N          starts each way (default 200)
//   --runtime  wrangler runs the edge in `wrangler dev` instead (as the e2e tests do), for comparison
//   --profile  also times requests the edge refuses before any Temporal call, interleaved with the
//              rest, to split the edge's own time: 401 with no token (routing, settings), 404 for an
//              unknown workflow with a valid token (+ JWT verification), 422 for an invalid body with
//              a valid token (+ body read and schema validation)
// Prints one JSON line: starts, runtime, direct_ms, edge_ms, added_ms, edge_healthz_ms (each
// {p50, p99}; added_ms is edge minus direct, per percentile) and, with --profile, profile_ms.
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { SEARCH_ATTRIBUTES, startStack, temporalApi } from "./harness.mjs";

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { runtime: { type: "string", default: "workerd" }, profile: { type: "boolean", default: false } },
});
const n = Number(positionals[0] ?? 200);
const RUNTIMES = {
  workerd: "workerd: Miniflare API, direct socket, deploy bundle",
  wrangler: "wrangler dev: workerd behind its proxy worker",
};
if (!RUNTIMES[opts.runtime]) throw new Error(`--runtime: workerd or wrangler, not ${opts.runtime}`);

const GAP_MS = 5;
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

const stack = await startStack({ runtime: opts.runtime });
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
        searchAttributes: { indexedFields: { [SEARCH_ATTRIBUTES.subject]: api.encode("bench"), [SEARCH_ATTRIBUTES.request_id]: api.encode(requestId) } },
      }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`direct start: ${res.status}`);
    return performance.now() - t;
  };
  /** Times one request to the edge, which must answer `status`. */
  const timed = async (path, status, { method = "POST", auth = true, body = order() } = {}) => {
    const headers = method === "POST" ? { "content-type": "application/json" } : {};
    if (auth) headers.authorization = `Bearer ${token}`;
    const t = performance.now();
    const res = await fetch(`${stack.edge.url}${path}`, { method, headers, body: method === "POST" ? JSON.stringify(body) : undefined });
    await res.arrayBuffer();
    if (res.status !== status) throw new Error(`${method} ${path}: ${res.status}, expected ${status}`);
    return performance.now() - t;
  };
  const viaEdge = () => timed("/v1/workflows/order", 202);
  const health = () => timed("/healthz", 200, { method: "GET", auth: false });
  const variants = {
    unauthenticated_401: () => timed("/v1/workflows/order", 401, { auth: false }),
    jwt_verified_404: () => timed("/v1/workflows/no-such-workflow", 404),
    invalid_body_422: () => timed("/v1/workflows/order", 422, { body: { ...order(), currency: 978 } }),
  };
  const profiled = opts.profile ? Object.entries(variants) : [];

  // Each request starts once the previous one's background work is done (the edge's
  // waitUntil KV write after a start, Temporal's own work after one): a request sent right
  // behind a start otherwise pays for it (/healthz by ~1.5 ms p50 on 2 cores).
  const settle = () => new Promise((r) => setTimeout(r, GAP_MS));
  const d = [];
  const e = [];
  const h = [];
  const v = Object.fromEntries(profiled.map(([k]) => [k, []]));
  // Interleaved, so all see the same server state; the first 20 rounds are a warm-up.
  for (let i = -20; i < n; i++) {
    const keep = (xs, x) => i >= 0 && xs.push(x);
    keep(d, await direct());
    await settle();
    keep(e, await viaEdge());
    await settle();
    keep(h, await health());
    await settle();
    for (const [k, f] of profiled) {
      keep(v[k], await f());
      await settle();
    }
  }
  const r = (x) => Math.round(x * 100) / 100;
  const summary = (xs) => ({ p50: r(pct(xs, 50)), p99: r(pct(xs, 99)) });
  console.log(
    JSON.stringify({
      starts: n,
      runtime: RUNTIMES[opts.runtime],
      direct_ms: summary(d),
      edge_ms: summary(e),
      added_ms: { p50: r(pct(e, 50) - pct(d, 50)), p99: r(pct(e, 99) - pct(d, 99)) },
      // Round trip of /healthz to the edge Worker: transport (and, under wrangler dev, its proxy), no edge logic.
      edge_healthz_ms: summary(h),
      ...(opts.profile ? { profile_ms: Object.fromEntries(Object.entries(v).map(([k, xs]) => [k, summary(xs)])) } : {}),
    }),
  );
} finally {
  await stack.stop();
}
