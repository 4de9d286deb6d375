// Payload encryption end to end (issue 19): the edge and the Rust worker hold the same key, so
// an order's input, memo, update arguments, results and failures reach Temporal as ciphertext
// only, over either transport (E2E_TRANSPORT: Temporal's HTTP API or `edgeflow gateway`, which
// holds no key), while callers hear plaintext. The raw history, read from Temporal with no key,
// holds the customer's email in no string, base64-decoded or not; a control stack without keys
// shows that the same check finds it there.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import { startStack, startWorker, temporalApi } from "./harness.mjs";

const KEY_ID = "k_e2e";
const KEY = randomBytes(32).toString("base64");
// The worker's key from the environment: the id is the variable's part lower-cased (docs/encryption.md).
const WORKER_KEYS = { EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID: KEY_ID, EDGEFLOW__ENCRYPTION__KEYS__K_E2E__KEY: KEY };
const EDGE_KEYS = { ENCRYPTION_KEYS: JSON.stringify({ [KEY_ID]: KEY }), ENCRYPTION_ACTIVE_KEY_ID: KEY_ID, CALLER_HASH_KEY: Buffer.from("h".repeat(32)).toString("base64") };

let stack;
after(async () => {
  await stack?.stop();
});

function order(email, cents = 2500, name = undefined) {
  return {
    order_id: `o-${Math.random().toString(36).slice(2, 10)}`,
    customer_email: email,
    ...(name ? { customer_name: name } : {}),
    items: [{ sku: "SKU-1", quantity: 1, unit_price_cents: cents }],
    amount_cents: cents,
    currency: "EUR",
  };
}

async function edge(path, { token, body, raw, headers = {} } = {}) {
  const h = { ...headers, authorization: `Bearer ${token}` };
  if (body !== undefined || raw !== undefined) h["content-type"] = "application/json";
  const res = await fetch(stack.edge.url + path, { method: body === undefined && raw === undefined ? "GET" : "POST", headers: h, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Where `needle` shows in a JSON document: any string as it is, or base64-decoded (payload data, metadata). */
function findings(doc, needle, at = "$") {
  if (typeof doc === "string") {
    const decoded = /^[A-Za-z0-9+/]+=*$/.test(doc) ? Buffer.from(doc, "base64").toString("latin1") : "";
    return doc.includes(needle) || decoded.includes(needle) ? [at] : [];
  }
  if (!doc || typeof doc !== "object") return [];
  return Object.entries(doc).flatMap(([k, v]) => findings(v, needle, `${at}.${k}`));
}

/**
 * Runs orders through the edge (one plain, one approved after an invalid decision, one rejected,
 * so failed) and returns where Temporal holds the customer's email, name or subject.
 */
async function ordersAndFindings({ encrypted }) {
  const tag = Math.random().toString(36).slice(2, 8);
  const email = `enc-${tag}@example.com`;
  const name = `Ada Byron-${tag}`;
  const subject = `subject-${tag}`;
  stack = await startStack({
    startWorker: (o) => startWorker({ ...o, env: encrypted ? WORKER_KEYS : {} }),
    edgeOverrides: encrypted ? EDGE_KEYS : {},
  });
  const api = temporalApi(stack.temporal);
  const customer = await stack.issuer.mint({ sub: subject, email, roles: ["customer"] });
  const approver = await stack.issuer.mint({ sub: "dave", roles: ["approver"] });

  const done = await edge("/v1/workflows/order", { token: customer, body: order(email, 2500, name), headers: { prefer: "wait=30" } });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.status, "completed", JSON.stringify(done.body));
  assert.ok(done.body.result && typeof done.body.result === "object", JSON.stringify(done.body));

  const big = await edge("/v1/workflows/order", { token: customer, body: order(email, 1_000_000) });
  assert.equal(big.status, 202, JSON.stringify(big.body));
  const id = big.body.workflow_id;
  // Refused by the worker's update validator: the typed failure's details come back through the codec.
  const invalid = await edge(`/v1/runs/${id}/signals/approve`, { token: approver, raw: '{"reason":"\\ud800"}' });
  assert.equal(invalid.status, 422, JSON.stringify(invalid.body));
  assert.deepEqual(invalid.body.errors.map((e) => e.path), ["$.reason"]);
  const applied = await edge(`/v1/runs/${id}/signals/approve`, { token: approver, body: { reason: `ok for ${email}` } });
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  assert.deepEqual(applied.body.result, { state: "approved", approver: "dave", reason: `ok for ${email}` });
  const approved = await edge(`/v1/runs/${id}`, { token: customer, headers: { prefer: "wait=30" } });
  assert.equal(approved.body.status, "completed", JSON.stringify(approved.body));

  // A failed order: rejected, with the email in the reason, so in the failure's message.
  const refused = await edge("/v1/workflows/order", { token: customer, body: order(email, 1_000_000, name) });
  const rejectedId = refused.body.workflow_id;
  const rejected = await edge(`/v1/runs/${rejectedId}/signals/reject`, { token: approver, body: { reason: `no stock for ${email}` } });
  assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
  const failed = await edge(`/v1/runs/${rejectedId}`, { token: customer, headers: { prefer: "wait=30" } });
  assert.equal(failed.body.status, "failed", JSON.stringify(failed.body));
  assert.ok(failed.body.error.message.includes(`no stock for ${email}`), JSON.stringify(failed.body));

  const found = [];
  const encodings = new Set();
  for (const wf of [done.body.workflow_id, id, rejectedId]) {
    const history = (await api.history(wf)).body;
    assert.ok(history.history?.events?.length > 5, JSON.stringify(history).slice(0, 300));
    const described = (await api.describe(wf)).body;
    for (const needle of [email, name, subject]) {
      found.push(...findings(history, needle, `${wf}:history`), ...findings(described, needle, `${wf}:describe`));
    }
    for (const e of history.history.events) {
      const input = e.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      if (input) encodings.add(Buffer.from(input.metadata.encoding, "base64").toString());
    }
  }
  await stack.stop();
  stack = undefined;
  return { found, encodings };
}

describe(`payload encryption in the edge and the worker (${process.env.E2E_TRANSPORT || "temporal_http"})`, () => {
  it("with the same key in both, Temporal holds the customer's email, name and subject nowhere, and callers hear plaintext", async () => {
    const { found, encodings } = await ordersAndFindings({ encrypted: true });
    assert.deepEqual([...encodings], ["binary/encrypted"]);
    assert.deepEqual(found, [], `the email is readable in Temporal at ${found.join(", ")}`);
  });

  it("control: without keys the same check finds the email in input, memo and activity payloads", async () => {
    const { found, encodings } = await ordersAndFindings({ encrypted: false });
    assert.deepEqual([...encodings], ["json/plain"]);
    assert.ok(found.some((at) => /workflowExecutionStartedEventAttributes\.input/.test(at)), found.join("\n"));
    assert.ok(found.some((at) => /memo\.fields\.edge_email/.test(at)), found.join("\n"));
    assert.ok(found.some((at) => /activityTaskScheduledEventAttributes\.input/.test(at)), found.join("\n"));
    assert.ok(found.some((at) => /failure\.(cause\.)*message/.test(at)), found.join("\n"));
    assert.ok(found.some((at) => /searchAttributes/.test(at)), found.join("\n"));
  });
});
