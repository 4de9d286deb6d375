// End-to-end: the edge in workerd (E2E_EDGE_RUNTIME=wrangler: in `wrangler dev`)
// against the real Temporal dev server, with a real loopback token issuer and
// completion callbacks on. No workflow worker runs here, so started runs stay
// open; where a run must end, this test ends it in Temporal directly, and where
// a completion event must arrive, it signs one as the worker would.
// full-stack.e2e.test.mjs adds the Rust worker.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { SEARCH_ATTRIBUTES, callbackToken, edgeStarter, edgeVars, scopedRunId, signedHook, startStack, temporalApi } from "./harness.mjs";

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

/** A valid order; `amount_cents` follows the items. */
function order(overrides = {}) {
  const items = overrides.items ?? [{ sku: "SKU-1", quantity: 2, unit_price_cents: 1250 }];
  return {
    order_id: `o-${Math.random().toString(36).slice(2, 10)}`,
    customer_email: "carol@example.com",
    items,
    amount_cents: items.reduce((sum, i) => sum + i.quantity * i.unit_price_cents, 0),
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

/** The id of carol's run of an order: named after its order id, behind her scope (docs/architecture.md). */
const idFor = (input) => scopedRunId("order", stack.issuer.issuer, "carol", input.order_id);

const start = (body, headers = {}, token = customer) => edge("/v1/workflows/order", { token, body, headers });

function eventsOf(history, type) {
  return (history.body.history?.events ?? []).filter((e) => e.eventType === type);
}

describe("edge in workerd against the Temporal dev server", () => {
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
    assert.equal(api.decode(info.searchAttributes.indexedFields[SEARCH_ATTRIBUTES.subject]), "carol");
    assert.equal(api.decode(info.searchAttributes.indexedFields[SEARCH_ATTRIBUTES.request_id]), "e2e-req-1");

    const started = eventsOf(await api.history(r.body.workflow_id), "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED")[0].workflowExecutionStartedEventAttributes;
    assert.deepEqual(api.decode(started.input.payloads[0]), input);
    assert.equal(started.taskQueue.name, "edgeflow");
    const traced = api.decode(started.header.fields["_tracer-data"]);
    assert.equal(traced.traceparent, r.headers.get("traceresponse"), "the run continues under the edge's span");
    assert.match(traced.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    assert.equal(traced.baggage, "edge_request_id=e2e-req-1,edge_subject=carol");
  });

  it("finds runs by the subject search attribute", async () => {
    const token = await stack.issuer.mint({ sub: "searchable-subject", roles: ["customer"] });
    const r = await start(order(), {}, token);
    // Visibility is eventually consistent: poll briefly.
    let found = [];
    for (let i = 0; i < 50 && !found.length; i++) {
      found = (await api.list(`${SEARCH_ATTRIBUTES.subject} = "searchable-subject"`)).body.executions ?? [];
      if (!found.length) await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual(found.map((e) => e.execution.workflowId), [r.body.workflow_id]);
  });

  it("maps a repeated Idempotency-Key to one run, marked replayed whether the run is open or closed", async () => {
    const input = order();
    const key = `key-${Math.random()}`;
    const first = await start(input, { "idempotency-key": key });
    const second = await start(input, { "idempotency-key": key });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    // Issue 10: the replay of an open run answered 202 without the header.
    assert.equal(second.status, 202);
    assert.equal(second.headers.get("idempotent-replayed"), "true");
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

    // The same order (one run) with a different input.
    const clash = await start({ ...input, currency: "USD" }, { "idempotency-key": key });
    assert.equal(clash.status, 409);
    assert.equal(clash.headers.get("location"), `/v1/runs/${first.body.workflow_id}`);
  });

  it("sends an approval as an update: with no worker to take it, 202 pending after the wait, nothing in history; refuses a customer", async () => {
    const r = await start(order({ items: [{ sku: "SKU-1", quantity: 4, unit_price_cents: 250_000 }] }));
    const denied = await edge(`/v1/runs/${r.body.workflow_id}/signals/approve`, { token: customer, body: {} });
    assert.equal(denied.status, 403);
    const t0 = Date.now();
    const pending = await edge(`/v1/runs/${r.body.workflow_id}/signals/approve`, { token: approver, body: { reason: "fine" }, headers: { prefer: "wait=2" } });
    assert.equal(pending.status, 202, JSON.stringify(pending.body));
    assert.equal(pending.body.status, "pending");
    assert.ok(Date.now() - t0 < 6000);
    const history = await api.history(r.body.workflow_id);
    assert.deepEqual(eventsOf(history, "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"), []);
    assert.deepEqual(eventsOf(history, "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"), []);
  });

  it("refuses, before anything reaches Temporal, every input the worker would refuse (issue 10's reproductions)", async () => {
    const sub = `strict-${Math.random().toString(36).slice(2)}`;
    const token = await stack.issuer.mint({ sub, roles: ["customer"] });
    const raw = (text) => fetch(`${stack.edge.url}/v1/workflows/order`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: text });
    const text = (amount, extra = "") =>
      `{"order_id":"o-1","customer_email":"a@example.com","items":[{"sku":"S","quantity":1,"unit_price_cents":${amount}}],"amount_cents":${amount},"currency":"EUR"${extra}}`;
    const cases = [
      // JavaScript reads 9007199254740993 as 9007199254740992: refused, never rounded and stored.
      [text("9007199254740993"), ["$.amount_cents", "$.items[0].unit_price_cents"]],
      [text("18446744073709551616"), ["$.amount_cents", "$.items[0].unit_price_cents"]],
      [text("1e20"), ["$.amount_cents", "$.items[0].unit_price_cents"]],
      [text("10", ',"customer_name":"\\ud800"'), ["$.customer_name"]],
      [text("10").replace("a@example.com", "a@localhost"), ["$.customer_email"]],
    ];
    for (const [body, paths] of cases) {
      const res = await raw(body);
      const problem = await res.json();
      assert.equal(res.status, 422, body);
      assert.deepEqual([...new Set(problem.errors.map((e) => e.path))].sort(), paths, body);
    }
    // Nothing was started for this caller (visibility lags a little: give it time to show one).
    await new Promise((res) => setTimeout(res, 1000));
    assert.deepEqual((await api.list(`${SEARCH_ATTRIBUTES.subject} = "${sub}"`)).body.executions ?? [], []);
  });

  it("refuses a token issued an hour in the future with 401 (issue 10)", async () => {
    const future = await stack.issuer.mint({ sub: "carol", roles: ["customer"], iatAhead: 3600 });
    const r = await start(order(), {}, future);
    assert.equal(r.status, 401);
    assert.equal(r.body.code, "token_not_yet_valid");
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

  it("does not believe a signed completion event for a run Temporal reports open; GET still says running (issue 10)", async () => {
    const key = `forged-${Math.random()}`;
    const input = order();
    const workflowId = idFor(input);
    const waiting = start(input, { prefer: "wait=3", "idempotency-key": key });
    let described;
    for (let i = 0; i < 50; i++) {
      described = await api.describe(workflowId);
      if (described.status === 200) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    // A sender holding the webhook secret (a run of some workflow, a compromised worker) claims this run completed.
    const body = JSON.stringify({
      type: "workflow.completed",
      timestamp: new Date().toISOString(),
      data: { workflow_id: workflowId, run_id: described.body.workflowExecutionInfo.execution.runId, workflow_type: "order", status: "completed", result: { forged: true }, error: null },
    });
    const hookHeaders = signedHook(body);
    assert.equal((await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: hookHeaders, body })).status, 200);
    const r = await waiting;
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.status, "running");
    const view = await edge(`/v1/runs/${workflowId}`, { token: customer });
    assert.equal(view.body.status, "running");
    assert.equal(view.body.result, null);
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

  it("hears at once, through Temporal's completion callback, that a run was terminated (issue 10)", async () => {
    const key = `terminated-${Math.random()}`;
    const input = order();
    const workflowId = idFor(input);
    const waiting = start(input, { prefer: "wait=20", "idempotency-key": key });
    await new Promise((res) => setTimeout(res, 1000));
    await api.terminate(workflowId, "ended by an operator");
    const r = await waiting;
    const answeredAt = Date.now();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, "terminated");
    assert.deepEqual(r.body.error, { message: "ended by an operator" });
    const info = (await api.describe(workflowId)).body;
    const closedAt = Date.parse(info.workflowExecutionInfo.closeTime);
    assert.ok(answeredAt - closedAt < 3000, `answered ${answeredAt - closedAt} ms after the close`);
    console.log(`# terminated: answered ${answeredAt - closedAt} ms after Temporal closed the run`);
    // The callback the edge attached was delivered and accepted.
    assert.equal(info.callbacks?.[0]?.state, "CALLBACK_STATE_SUCCEEDED", JSON.stringify(info.callbacks));
    assert.equal((await edge(`/v1/runs/${workflowId}`, { token: customer })).body.status, "terminated");
  });

  it("hears that a run timed out, for a run started elsewhere with the edge's callback (issue 10)", async () => {
    // The edge sets no execution timeout; a client with Temporal access can, and its run still reaches the edge.
    const workflowId = `order-timeout-${Math.random().toString(36).slice(2)}`;
    const started = await api.start(workflowId, "order", order(), "edgeflow-idle", {
      workflowExecutionTimeout: "2s",
      memo: { fields: { edge_subject: api.encode("carol") } },
      completionCallbacks: [{ nexus: { url: `${stack.edge.url}/v1/hooks/temporal-callback?wf=${workflowId}`, header: { Authorization: `Bearer ${callbackToken(workflowId)}` } } }],
    });
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const t0 = Date.now();
    const r = await edge(`/v1/runs/${workflowId}`, { token: customer, headers: { prefer: "wait=20" } });
    assert.equal(r.status, 200);
    assert.equal(r.body.status, "timed_out");
    assert.ok(Date.now() - t0 < 6000, `answered after ${Date.now() - t0} ms`);
  });

  it("refuses a forged or stale webhook", async () => {
    const body = JSON.stringify({ type: "workflow.completed", timestamp: new Date().toISOString(), data: { workflow_id: "order-x", run_id: "r", workflow_type: "order", status: "completed", result: null, error: null } });
    const forged = signedHook(body, { secret: `whsec_${Buffer.from("not-the-right-secret-at-all!!").toString("base64")}` });
    assert.equal((await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: forged, body })).status, 401);
    const stale = signedHook(body, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    assert.equal((await fetch(`${stack.edge.url}/v1/hooks/temporal`, { method: "POST", headers: stale, body })).status, 401);
  });

  it("refuses to serve in production with the loopback dev issuer, and says why in its log", async () => {
    const prod = await edgeStarter()(edgeVars({ temporal: stack.temporal, issuer: stack.issuer, overrides: { ENVIRONMENT: "production" } }));
    try {
      const token = await stack.issuer.mint();
      for (const path of ["/healthz", "/v1/runs/order-x"]) {
        const res = await fetch(prod.url + path, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 500);
        assert.equal((await res.json()).type, "urn:edgeflow:problem:misconfigured");
      }
      const r = await fetch(`${prod.url}/v1/workflows/order`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(order()) });
      assert.equal(r.status, 500);
      // workerd (and wrangler dev) print the Worker's console.error output.
      for (let i = 0; i < 20 && !prod.output().includes("refusing to serve"); i++) await new Promise((res) => setTimeout(res, 100));
      assert.match(prod.output(), /refusing to serve: bad configuration.*OIDC_ISSUER: http:\/\/127\.0\.0\.1:\d+ is a loopback\/dev issuer/);
    } finally {
      await prod.stop();
    }
  });

  it("keeps answering while this process blocks: its log lines go to a file, not a pipe left unread", () => {
    // ~2 MB of access-log lines (an 8 KiB path each), far past what a pipe holds, while this
    // process's event loop is blocked in execFileSync, as a test driving Python or a bench is.
    // workerd writes console lines on its one event-loop thread: with a full pipe it stopped
    // answering anyone (bench W4, bench/results/20261206-w4-dispatch-partial.md).
    const script = `let ok = 0;
      for (let i = 0; i < 250; i++) {
        const res = await fetch(${JSON.stringify(stack.edge.url)} + "/" + "x".repeat(8192), { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        if (res.status === 404) ok++;
      }
      console.log(ok);`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(out.trim(), "250");
  });
});
