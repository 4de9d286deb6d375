// The edge's codec server end to end (issue 19): with the same key on the edge and the Rust
// worker, an order through the edge reaches Temporal encrypted; `temporal workflow show` with
// `--codec-endpoint <edge>/v1/codec` and a token whose role grants `codec` prints the customer's
// email, without the codec endpoint it does not, and a token without the role is refused.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { after, before, it } from "node:test";
import { startStack, startWorker, temporalCli } from "./harness.mjs";

const KEY_ID = "k_codec";
const KEY = randomBytes(32).toString("base64");
const WORKER_KEYS = { EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID: KEY_ID, EDGEFLOW__ENCRYPTION__KEYS__K_CODEC__KEY: KEY };
const EDGE_KEYS = { ENCRYPTION_KEYS: JSON.stringify({ [KEY_ID]: KEY }), ENCRYPTION_ACTIVE_KEY_ID: KEY_ID, CALLER_HASH_KEY: Buffer.from("h".repeat(32)).toString("base64") };
const EMAIL = `codec-${Math.random().toString(36).slice(2, 8)}@example.com`;

let stack;
let workflowId;
before(async () => {
  stack = await startStack({ startWorker: (o) => startWorker({ ...o, env: WORKER_KEYS }), edgeOverrides: EDGE_KEYS });
  const customer = await stack.issuer.mint({ sub: "erin", email: EMAIL, roles: ["customer"] });
  const input = { order_id: `o-${Math.random().toString(36).slice(2, 10)}`, customer_email: EMAIL, items: [{ sku: "SKU-1", quantity: 1, unit_price_cents: 2500 }], amount_cents: 2500, currency: "EUR" };
  const res = await fetch(`${stack.edge.url}/v1/workflows/order`, {
    method: "POST",
    headers: { authorization: `Bearer ${customer}`, "content-type": "application/json", prefer: "wait=30" },
    body: JSON.stringify(input),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.status, "completed", JSON.stringify(body));
  workflowId = body.workflow_id;
});
after(async () => {
  await stack?.stop();
});

/** `temporal workflow show` of the order, as text, with `flags` added. */
async function show(flags = []) {
  const args = ["workflow", "show", "--workflow-id", workflowId, "--address", stack.temporal.address, "--namespace", stack.temporal.namespace, "--detailed", ...flags];
  try {
    const { stdout } = await promisify(execFile)(temporalCli(), args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, out: stdout };
  } catch (e) {
    return { ok: false, out: `${e.stdout}\n${e.stderr}` };
  }
}

it("`temporal workflow show --codec-endpoint <edge>/v1/codec` with a `codec` token prints the customer's email; without the endpoint it does not", async () => {
  const admin = await stack.issuer.mint({ sub: "ops", roles: ["admin"] });
  const decoded = await show(["--codec-endpoint", `${stack.edge.url}/v1/codec`, "--codec-auth", `Bearer ${admin}`]);
  assert.ok(decoded.ok, decoded.out);
  assert.ok(decoded.out.includes(EMAIL), `the decoded history lacks ${EMAIL}:\n${decoded.out}`);

  const raw = await show();
  assert.ok(raw.ok, raw.out);
  assert.ok(!raw.out.includes(EMAIL), `the raw history shows ${EMAIL}:\n${raw.out}`);
  assert.ok(raw.out.includes("binary/encrypted"), raw.out);
});

it("the codec server refuses a token without the `codec` role (403) and no token (401), as the CLI would send them", async () => {
  const customer = await stack.issuer.mint({ sub: "erin", email: EMAIL, roles: ["customer"] });
  const decode = (headers) =>
    fetch(`${stack.edge.url}/v1/codec/decode`, { method: "POST", headers: { "content-type": "application/json", "x-namespace": stack.temporal.namespace, ...headers }, body: '{"payloads":[]}' });
  assert.equal((await decode({ authorization: `Bearer ${customer}` })).status, 403);
  assert.equal((await decode({})).status, 401);
  // The CLI retries a refused decode until its deadline and never shows the plaintext.
  const refused = await show(["--codec-endpoint", `${stack.edge.url}/v1/codec`, "--codec-auth", `Bearer ${customer}`]);
  assert.ok(!refused.out.includes(EMAIL), refused.out);
});
