// End-to-end: the edge in `wrangler dev` (workerd) against the real Temporal dev
// server, with a real loopback token issuer. No workflow worker runs here, so
// started runs stay open; where a run must finish, this test plays the worker's
// part (a signed completion webhook) or ends the run in Temporal directly.
// The full-stack test with the Rust worker passes `startWorker` to startStack().
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { edgeVars, signedHook, startEdge, startStack, temporalApi } from "./harness.mjs";

let stack;
let api;
let customer;
let approver;

before(async () => {
  stack = await startStack();
  api = temporalApi(stack.temporal);
  customer = await stack.issuer.mint({ sub: "carol", roles: ["customer"] });
  approver = await stack.issuer.mint({ sub: "dave", roles: ["approver"] });
});

after(async () => {
  await stack?.stop();
});

function order(overrides = {}) {
  return {
    order_id: `o-${Math.random().toString(36).slice(2, 10)}`,
    customer_email: "carol@example.com",
    items: [{ sku: "SKU-1", quantity: 2, unit_price_cents: 1250 }],
    amount_cents: 2500,
    currency: "EUR",
    ...overrides,
  };
}

async function edge(path, { token, body, headers = {}, method } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const res = await fetch(stack.edge.url + path, { method: method ?? (body === undefined ? "GET" : "POST"), headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** The workflow id the edge derives from an Idempotency-Key (the documented contract). */
const idFor = (subject, key) => `order-${createHash("sha256").update(`${subject}\n${key}`).digest("hex").slice(0, 32)}`;

const start = (body, headers = {}, token = customer) => edge("/v1/workflows/order", { token, body, headers });

function eventsOf(history, type) {
  return (history.body.history?.events ?? []).filter((e) => e.eventType === type);
}

describe("edge against the Temporal dev server", () => {
  it("serves /healthz", async () => {
    const r = await edge("/healthz");
    assert.equal(r.status, 200);
  });

  it("starts order with identity in memo and search attributes, and the traceparent in the header", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const input = order();
    const r = await start(input, { traceparent, "x-request-id": "e2e-req-1" });
    assert.equal(r.status, 202);
    assert.equal(r.headers.get("location"), `/v1/runs/${r.body.workflow_id}`);

    const d = await api.describe(r.body.workflow_id);
    assert.equal(d.status, 200);
    const info = d.body.workflowExecutionInfo;
    assert.equal(info.type.name, "order");
    assert.equal(info.status, "WORKFLOW_EXECUTION_STATUS_RUNNING");
    assert.equal(info.execution.runId, r.body.run_id);
    const memo = Object.fromEntries(Object.entries(info.memo.fields).map(([k, v]) => [k, api.decode(v)]));
    assert.equal(memo.edge_subject, "carol");
    assert.equal(memo.edge_email, "carol@example.com");
    assert.deepEqual(memo.edge_roles, ["customer"]);
    assert.equal(memo.edge_request_id, "e2e-req-1");
    assert.equal(api.decode(info.searchAttributes.indexedFields.EdgeSubject), "carol");
    assert.equal(api.decode(info.searchAttributes.indexedFields.EdgeRequestId), "e2e-req-1");

    const started = eventsOf(await api.history(r.body.workflow_id), "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED")[0].workflowExecutionStartedEventAttributes;
    assert.deepEqual(api.decode(started.input.payloads[0]), input);
    assert.equal(started.taskQueue.name, "edgeflow");
    assert.deepEqual(api.decode(started.header.fields["_tracer-data"]), { traceparent });
  });

  it("finds runs by the EdgeSubject search attribute", async () => {
    const token = await stack.issuer.mint({ sub: "searchable-subject", roles: ["customer"] });
    const r = await start(order(), {}, token);
    // Visibility is eventually consistent: poll briefly.
    let found = [];
    for (let i = 0; i < 50 && !found.length; i++) {
      found = (await api.list(`EdgeSubject = "searchable-subject"`)).body.executions ?? [];
      if (!found.length) await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual(found.map((e) => e.execution.workflowId), [r.body.workflow_id]);
  });

  it("maps a repeated Idempotency-Key to one run, even after the run has finished", async () => {
    const input = order();
    const key = `key-${Math.random()}`;
    const first = await start(input, { "idempotency-key": key });
    const second = await start(input, { "idempotency-key": key });
    assert.equal(first.status, 202);
    assert.equal(second.body.workflow_id, first.body.workflow_id);
    assert.equal(second.body.run_id, first.body.run_id);

    await api.terminate(first.body.workflow_id, "finished for the test");
    const third = await start(input, { "idempotency-key": key });
    assert.equal(third.status, 200, JSON.stringify(third.body));
    assert.equal(third.body.run_id, first.body.run_id);
    assert.equal(third.body.status, "terminated");
    assert.equal(third.headers.get("idempotent-replayed"), "true");

    // Visibility is eventually consistent: wait until it shows the run, then count.
    let runs = [];
    for (let i = 0; i < 50 && runs.length === 0; i++) {
      runs = (await api.list(`WorkflowId = "${first.body.workflow_id}"`)).body.executions ?? [];
      if (!runs.length) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(runs.length, 1, `expected exactly one run, found ${runs.length}`);

    const clash = await start(order({ amount_cents: 1 }), { "idempotency-key": key });
    assert.equal(clash.status, 409);
    assert.equal(clash.headers.get("location"), `/v1/runs/${first.body.workflow_id}`);
  });

  it("delivers an approver's signal with the approver set to the verified subject; refuses a customer", async () => {
    const r = await start(order({ amount_cents: 900_000 }));
    const denied = await edge(`/v1/runs/${r.body.workflow_id}/signals/approve`, { token: customer, body: {} });
    assert.equal(denied.status, 403);
    const ok = await edge(`/v1/runs/${r.body.workflow_id}/signals/approve`, { token: approver, body: { approver: "mallory", reason: "fine" } });
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const signaled = eventsOf(await api.history(r.body.workflow_id), "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED");
    assert.equal(signaled.length, 1);
    const attrs = signaled[0].workflowExecutionSignaledEventAttributes;
    assert.equal(attrs.signalName, "approve");
    assert.deepEqual(api.decode(attrs.input.payloads[0]), { approver: "dave", reason: "fine" });
    assert.equal(attrs.identity, "edge:dave");
  });

  it("shows a running run and cancels it for its owner", async () => {
    const r = await start(order());
    const view = await edge(`/v1/runs/${r.body.workflow_id}`, { token: customer });
    assert.equal(view.status, 200);
    assert.equal(view.body.status, "running");
    const c = await edge(`/v1/runs/${r.body.workflow_id}/cancel`, { token: customer, method: "POST" });
    assert.equal(c.status, 202);
    assert.equal(eventsOf(await api.history(r.body.workflow_id), "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED").length, 1);
  });

  it("answers 404 for an unknown run and for runs of workflows outside the manifest", async () => {
    assert.equal((await edge("/v1/runs/order-nonexistent", { token: approver })).status, 404);
    await api.start("internal-e2e-1", "internal_cleanup", {});
    assert.equal((await edge("/v1/runs/internal-e2e-1", { token: approver })).status, 404);
  });

  it("holds Prefer: wait until the completion webhook arrives, then answers 200 with the result", async () => {
    const key = `wait-${Math.random()}`;
    const waiting = start(order(), { prefer: "wait=20", "idempotency-key": key });
    // Play the worker: the id is deterministic for a key, so derive it as the edge does.
    const workflowId = idFor("carol", key);
    let described;
    for (let i = 0; i < 50; i++) {
      described = await api.describe(workflowId);
      if (described.status === 200) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const runId = described.body.workflowExecutionInfo.execution.runId;
    const body = JSON.stringify({
      type: "workflow.completed",
      timestamp: new Date().toISOString(),
      data: { workflow_id: workflowId, run_id: runId, workflow_type: "order", status: "completed", result: { charged_cents: 2500, receipt: "R-1" }, error: null },
    });
    const hookHeaders = signedHook(body);
    const hook = await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: hookHeaders, body });
    assert.equal(hook.status, 200);
    const r = await waiting;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.result, { charged_cents: 2500, receipt: "R-1" });
    assert.equal(r.body.workflow_id, workflowId);

    // The status route now answers from the hint; a replay of the webhook is dropped.
    const view = await edge(`/v1/runs/${workflowId}`, { token: customer });
    assert.equal(view.body.status, "completed");
    const replay = await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: hookHeaders, body });
    assert.deepEqual(await replay.json(), { status: "duplicate" });
  });

  it("answers 202 with Location when the run outlives the wait", async () => {
    const t0 = Date.now();
    const r = await start(order(), { prefer: "wait=1" });
    assert.equal(r.status, 202);
    assert.ok(Date.now() - t0 >= 900);
    assert.equal(r.headers.get("location"), `/v1/runs/${r.body.workflow_id}`);
  });

  it("falls back to Temporal's close event when no webhook arrives", async () => {
    const key = `fallback-${Math.random()}`;
    const workflowId = idFor("carol", key);
    const waiting = start(order(), { prefer: "wait=3", "idempotency-key": key });
    setTimeout(() => void api.terminate(workflowId, "ended without a webhook"), 1000);
    const r = await waiting;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, "terminated");
    assert.deepEqual(r.body.error, { message: "ended without a webhook" });
  });

  it("refuses a forged or stale webhook", async () => {
    const body = JSON.stringify({ type: "workflow.completed", timestamp: new Date().toISOString(), data: { workflow_id: "order-x", run_id: "r", workflow_type: "order", status: "completed", result: null, error: null } });
    const forged = signedHook(body, { secret: `whsec_${Buffer.from("not-the-right-secret-at-all!!").toString("base64")}` });
    assert.equal((await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: forged, body })).status, 401);
    const stale = signedHook(body, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    assert.equal((await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: stale, body })).status, 401);
  });

  it("refuses to serve in production with the loopback dev issuer, and says why in its log", async () => {
    const prod = await startEdge(edgeVars({ temporal: stack.temporal, issuer: stack.issuer, overrides: { ENVIRONMENT: "production" } }));
    try {
      const token = await stack.issuer.mint();
      for (const path of ["/healthz", "/v1/runs/order-x"]) {
        const res = await fetch(prod.url + path, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 500);
        assert.equal((await res.json()).type, "urn:edgeflow:problem:misconfigured");
      }
      const r = await fetch(`${prod.url}/v1/workflows/order`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(order()) });
      assert.equal(r.status, 500);
      // wrangler dev prints the Worker's console.error output.
      for (let i = 0; i < 20 && !prod.output().includes("refusing to serve"); i++) await new Promise((res) => setTimeout(res, 100));
      assert.match(prod.output(), /refusing to serve: bad configuration.*OIDC_ISSUER: http:\/\/127\.0\.0\.1:\d+ is a loopback\/dev issuer/);
    } finally {
      await prod.stop();
    }
  });
});
