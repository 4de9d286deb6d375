// Edge activities end to end: the Temporal dev server, the real `edgeflow worker` with
// [edge_activities] on (a P-256 key made here, its public half in the edge's ACTIVITY_KEYS), and
// the edge in workerd (scripts/serve-workerd.mjs, with wrangler.jsonc's KV, D1 and Durable
// Object bindings, state kept in a directory). A Python SDK workflow schedules `edge.kv.put` by
// name on `edgeflow.edge` and gets the output; the history shows one attempt; an `order` run
// writes its status hint. Both values are then read from the edge's local ACTIVITY_KV with
// wrangler, as the edge README tells an operator to.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import {
  EDGE_DIR,
  EDGEFLOW_BIN,
  REPO_DIR,
  WEBHOOK_SECRET,
  edgeVars,
  freePort,
  startEdgeWorkerd,
  startIssuer,
  startTemporal,
  startWorker,
  temporalCli,
} from "./harness.mjs";

const PYTHON = process.env.EDGEFLOW_PYTHON || join(REPO_DIR, ".tools", "venv", "bin", "python");
const QUEUE = "edgeflow";

const dir = mkdtempSync(join(tmpdir(), "edgeflow-worker-activities-"));
// wrangler keeps local state under `<--persist-to>/v3`; serve-workerd's --persist-to is that v3.
const state = join(dir, "edge-state");
const stops = [];
let temporal;
let edge;

before(async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const keyFile = join(dir, "edge-activities.pem");
  writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "e2e-worker", alg: "ES256", use: "sig" };

  temporal = await startTemporal();
  stops.push(temporal.stop);
  const issuer = await startIssuer();
  stops.push(issuer.stop);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  edge = await startEdgeWorkerd(
    edgeVars({ temporal, issuer, overrides: { ACTIVITY_KEYS: JSON.stringify({ keys: [jwk] }), EDGE_ACTIVITY_AUDIENCE: url } }),
    port,
    { stateDir: join(state, "v3") },
  );
  stops.push(() => edge.stop());
  const worker = await startWorker({
    temporal,
    webhookUrl: `${url}/v1/hooks/temporal`,
    webhookSecret: WEBHOOK_SECRET,
    env: {
      EDGEFLOW__TASK_QUEUES__MAIN__NAME: QUEUE,
      EDGEFLOW__EDGE_ACTIVITIES__URL: url,
      EDGEFLOW__EDGE_ACTIVITIES__KEY_ID: "e2e-worker",
      EDGEFLOW__EDGE_ACTIVITIES__SIGNING_KEY_FILE: keyFile,
    },
  });
  stops.push(() => worker.stop());
});

after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** `edge.*` calls from a Python SDK workflow (tests/python/edge_caller.py). */
function fromPython(calls) {
  const out = execFileSync(
    PYTHON,
    [join(REPO_DIR, "tests", "python", "edge_caller.py"), temporal.address, "e2e-python", JSON.stringify(calls)],
    { encoding: "utf8", timeout: 120_000 },
  );
  return JSON.parse(out);
}

function history(workflowId) {
  const out = execFileSync(
    temporalCli(),
    ["workflow", "show", "--workflow-id", workflowId, "--output", "json", "--address", temporal.address],
    { encoding: "utf8" },
  );
  return JSON.parse(out).events;
}

/** A value in the edge's local ACTIVITY_KV, read from its kept state with wrangler. */
function kvGet(key) {
  return execFileSync(
    process.execPath,
    [join(EDGE_DIR, "node_modules", "wrangler", "bin", "wrangler.js"), "kv", "key", "get", "--binding", "ACTIVITY_KV", "--local", "--persist-to", state, key],
    { cwd: EDGE_DIR, encoding: "utf8", env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" } },
  ).trim();
}

it("a Python workflow runs edge.kv.put at the edge, and an order writes its status hint there", async () => {
  const key = `e2e/${randomBytes(4).toString("hex")}`;
  const id = `py-kv-put-${randomBytes(4).toString("hex")}`;
  const [result] = fromPython([
    { id, activity: "edge.kv.put", input: { key, value: "from python" }, edge_queue: `${QUEUE}.edge`, start_to_close_secs: 30 },
  ]);
  assert.deepEqual(result.result, { key }, JSON.stringify(result));
  const started = history(id).filter((e) => e.eventType === "EVENT_TYPE_ACTIVITY_TASK_STARTED");
  assert.equal(started.length, 1);
  assert.equal(started[0].activityTaskStartedEventAttributes.attempt, 1);

  const orderId = `o-e2e-${randomBytes(4).toString("hex")}`;
  const order = {
    order_id: orderId,
    customer_email: "ada@example.com",
    items: [{ sku: "sku-1", quantity: 1, unit_price_cents: 2500 }],
    amount_cents: 2500,
    currency: "EUR",
  };
  const out = execFileSync(EDGEFLOW_BIN, ["start", "order", "--id", `order-${orderId}`, "--input", JSON.stringify(order), "--wait"], {
    cwd: REPO_DIR,
    encoding: "utf8",
    env: { ...process.env, EDGEFLOW__TEMPORAL__ADDRESS: `http://${temporal.address}`, EDGEFLOW__TASK_QUEUES__MAIN__NAME: QUEUE },
  });
  assert.match(out, /"completed"/);

  // Read the values back from the edge's own storage, once workerd has stopped writing.
  await edge.stop();
  assert.equal(kvGet(key), "from python");
  // Keyed like the order's row, by its run (two callers may send the same order_id).
  const hint = JSON.parse(kvGet(`order-status/order-${orderId}`));
  assert.equal(hint.status, "completed");
  assert.match(hint.updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});
