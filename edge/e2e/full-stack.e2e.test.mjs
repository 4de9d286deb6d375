// End-to-end with every real part: the edge in workerd, the Temporal dev server
// (completion callbacks allowed), the Rust worker (`edgeflow worker`, with the
// demo services, SQLite and an email outbox) and a loopback token issuer. The
// reproductions of issue 10 that need a worker live here; the rest are in
// edge.e2e.test.mjs.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startStack, startWorker, temporalApi } from "./harness.mjs";

let stack;
let api;
let customer;
let approver;
let otherApprover;

before(async () => {
  stack = await startStack({ startWorker });
  api = temporalApi(stack.temporal);
  customer = await stack.issuer.mint({ sub: "erin", roles: ["customer"] });
  approver = await stack.issuer.mint({ sub: "dave", roles: ["approver"] });
  otherApprover = await stack.issuer.mint({ sub: "frank", roles: ["approver"] });
});

after(async () => {
  await stack?.stop();
});

/** A valid order; at 1,000,000 cents or more it waits for a decision (workflows.order.approval_threshold_cents). */
function order(cents = 2500) {
  return {
    order_id: `o-${Math.random().toString(36).slice(2, 10)}`,
    customer_email: "erin@example.com",
    items: [{ sku: "SKU-1", quantity: 1, unit_price_cents: cents }],
    amount_cents: cents,
    currency: "EUR",
  };
}

async function edge(path, { token, body, raw, headers = {}, method } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined || raw !== undefined) h["content-type"] = "application/json";
  const res = await fetch(stack.edge.url + path, {
    method: method ?? (body === undefined && raw === undefined ? "GET" : "POST"),
    headers: h,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

const events = async (id, type) => ((await api.history(id)).body.history?.events ?? []).filter((e) => e.eventType === type);

describe("edge in workerd + Temporal + the Rust worker", () => {
  it("gives two customers sending the same order_id each their own run; both complete, neither sees the other's", async () => {
    const input = order();
    const other = await stack.issuer.mint({ sub: "mallory", roles: ["customer"] });
    const [a, b] = await Promise.all([edge("/v1/workflows/order", { token: customer, body: input, headers: { prefer: "wait=30" } }), edge("/v1/workflows/order", { token: other, body: { ...input, currency: "USD" }, headers: { prefer: "wait=30" } })]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(a.body.status, "completed", JSON.stringify(a.body));
    assert.equal(b.body.status, "completed", JSON.stringify(b.body));
    assert.notEqual(a.body.workflow_id, b.body.workflow_id);
    assert.equal(a.body.result.order_id, input.order_id);
    assert.equal(b.body.result.order_id, input.order_id);
    assert.equal((await edge(`/v1/runs/${a.body.workflow_id}`, { token: other })).status, 403);
    assert.equal((await edge(`/v1/runs/${b.body.workflow_id}`, { token: customer })).status, 403);
    // The first customer's order, sent again, is still theirs and unchanged.
    const again = await edge("/v1/workflows/order", { token: customer, body: input });
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.body.run_id, a.body.run_id);
  });

  it("answers a Prefer: wait start with the run's result once Temporal has closed it", async () => {
    const r = await edge("/v1/workflows/order", { token: customer, body: order(), headers: { prefer: "wait=30" } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, "completed");
    assert.ok(r.body.result && typeof r.body.result === "object", JSON.stringify(r.body));
    const info = (await api.describe(r.body.workflow_id)).body.workflowExecutionInfo;
    assert.equal(info.status, "WORKFLOW_EXECUTION_STATUS_COMPLETED");
    assert.deepEqual((await edge(`/v1/runs/${r.body.workflow_id}`, { token: customer })).body, r.body);
  });

  it("answers the approver: 422 naming the field and nothing in history, 200 applied, 409 already decided, 409 once closed (issue 10)", async () => {
    const started = await edge("/v1/workflows/order", { token: customer, body: order(1_000_000) });
    assert.equal(started.status, 202);
    const id = started.body.workflow_id;
    const decide = (name, token, init) => edge(`/v1/runs/${id}/signals/${name}`, { token, ...init });

    // A lone surrogate used to wedge the run (every later workflow task failed).
    const invalid = await decide("approve", approver, { raw: '{"reason":"\\ud800"}' });
    assert.equal(invalid.status, 422, JSON.stringify(invalid.body));
    assert.deepEqual(invalid.body.errors.map((e) => e.path), ["$.reason"]);

    const applied = await decide("approve", approver, { body: { reason: "within budget" } });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    assert.equal(applied.body.status, "applied");
    assert.deepEqual(applied.body.result, { state: "approved", approver: "dave", reason: "within budget" });

    // Refused by the run (or, if the order has finished meanwhile, because it has closed).
    const again = await decide("reject", otherApprover, { body: {} });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    if (again.body.type === "urn:edgeflow:problem:decision-refused") assert.equal(again.body.detail, "the order was already approved");
    else assert.equal(again.body.type, "urn:edgeflow:problem:run-closed");

    const done = await edge(`/v1/runs/${id}`, { token: customer, headers: { prefer: "wait=30" } });
    assert.equal(done.body.status, "completed", JSON.stringify(done.body));
    // Issue 10: right after a completed answer, a second approve was accepted (202) and entered history.
    const late = await decide("approve", approver, { body: {} });
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.equal(late.body.type, "urn:edgeflow:problem:run-closed");

    assert.equal((await events(id, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED")).length, 1);
    assert.deepEqual(await events(id, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"), []);
    assert.deepEqual(await events(id, "EVENT_TYPE_WORKFLOW_TASK_FAILED"), []);
  });

  it("marks a replayed start of a run the worker is running Idempotent-Replayed: true (issue 10)", async () => {
    const input = order(1_000_000);
    const key = `replay-${Math.random()}`;
    const first = await edge("/v1/workflows/order", { token: customer, body: input, headers: { "idempotency-key": key } });
    const second = await edge("/v1/workflows/order", { token: customer, body: input, headers: { "idempotency-key": key } });
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(second.headers.get("idempotent-replayed"), "true");
    assert.equal(second.body.run_id, first.body.run_id);
  });

  it("tells a waiting caller how a canceled order ended, as Temporal reports it (issue 10)", async () => {
    const started = await edge("/v1/workflows/order", { token: customer, body: order(1_000_000) });
    const id = started.body.workflow_id;
    const waiting = edge(`/v1/runs/${id}`, { token: customer, headers: { prefer: "wait=30" } });
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal((await edge(`/v1/runs/${id}/cancel`, { token: customer, method: "POST" })).status, 202);
    const r = await waiting;
    const answeredAt = Date.now();
    const info = (await api.describe(id)).body.workflowExecutionInfo;
    assert.notEqual(info.status, "WORKFLOW_EXECUTION_STATUS_RUNNING", "the run should have closed");
    assert.equal(r.body.status, info.status.replace("WORKFLOW_EXECUTION_STATUS_", "").toLowerCase(), JSON.stringify(r.body));
    console.log(`# canceled order ended ${r.body.status}; answered ${answeredAt - Date.parse(info.closeTime)} ms after Temporal closed it`);
  });
});
