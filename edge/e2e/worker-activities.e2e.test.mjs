// Edge activities end to end: the Temporal dev server, the real `edgeflow worker` with
// [edge_activities] on (a P-256 key made here, its public half in the edge's ACTIVITY_KEYS), and
// the edge in workerd (scripts/serve-workerd.mjs, with wrangler.jsonc's KV, D1 and Durable
// Object bindings, state kept in a directory). The edge is the test entry
// e2e/fixtures/failing-kv-put.ts: the real edge with `kv.put` failing on purpose for keys under
// flaky/, refuse/ and hold/ (the checks 2 and 3), the real kv.put for every other key.
// A Python SDK workflow schedules `edge.kv.put` by name on `edgeflow.edge`:
//   - it gets the output; the history shows one attempt; an `order` run writes its status hint;
//     both values are then read from the edge's local ACTIVITY_KV with wrangler, as the edge
//     README tells an operator to (check 1);
//   - a plain Error twice succeeds on attempt 3; ActivityError(nonRetryable) fails at once with
//     its type (check 2);
//   - a handler still running at the deadline sees its AbortSignal and the attempt times out;
//     cancelling the workflow drops the in-flight request (check 3; the handler's signal on
//     that drop is a todo: local workerd never fires it, docs/upstream/workerd-request-signal.md).
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
    { stateDir: join(state, "v3"), entry: join(EDGE_DIR, "e2e", "fixtures", "failing-kv-put.ts") },
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

/** What the fixture logged when the cancelled attempt's signal fired (set by the test below). */
let cancelledAbort;

/** The edge's JSON log lines (access log, the fixture's "e2e abort seen"). */
function edgeLines() {
  return edge
    .log()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

it("retries a handler's plain Error, stops at its non-retryable one, aborts a handler at the deadline, and drops a cancelled request", async () => {
  const tag = randomBytes(4).toString("hex");
  const id = (name) => `py-${name}-${tag}`;
  const key = (prefix, name) => `${prefix}/${name}-${tag}`;
  const call = (name, prefix, extra = {}) => ({
    id: id(name),
    activity: "edge.kv.put",
    input: { key: key(prefix, name), value: "v" },
    edge_queue: `${QUEUE}.edge`,
    start_to_close_secs: 10,
    max_attempts: 5,
    ...extra,
  });
  const started = Date.now();
  const results = Object.fromEntries(
    fromPython([
      call("flaky", "flaky"),
      call("refuse", "refuse"),
      call("deadline", "hold", { start_to_close_secs: 3, max_attempts: 1 }),
      call("cancel", "hold", { start_to_close_secs: 5, heartbeat_secs: 1, cancel_after_secs: 1 }),
    ]).map((r) => [r.id, r]),
  );
  const took = Date.now() - started;
  const requests = (name) => edgeLines().filter((l) => l.msg === "request" && l.workflow_id === id(name));
  const events = (name, type) => history(id(name)).filter((e) => e.eventType === type);

  // A plain Error is retried: attempts 1 and 2 answered 422, the third 200 with the output.
  assert.deepEqual(results[id("flaky")].result, { key: key("flaky", "flaky") }, JSON.stringify(results[id("flaky")]));
  assert.deepEqual(requests("flaky").map((l) => l.status), [422, 422, 200]);
  assert.equal(events("flaky", "EVENT_TYPE_ACTIVITY_TASK_STARTED")[0].activityTaskStartedEventAttributes.attempt, 3);

  // ActivityError(nonRetryable): one attempt, failed with the handler's type.
  const refused = results[id("refuse")].error;
  assert.deepEqual({ type: refused?.type, non_retryable: refused?.non_retryable }, { type: "OutOfStock", non_retryable: true }, JSON.stringify(refused));
  assert.equal(requests("refuse").length, 1);
  const failed = events("refuse", "EVENT_TYPE_ACTIVITY_TASK_FAILED")[0].activityTaskFailedEventAttributes.failure;
  assert.equal(failed.applicationFailureInfo.type, "OutOfStock");
  assert.equal(events("refuse", "EVENT_TYPE_ACTIVITY_TASK_STARTED")[0].activityTaskStartedEventAttributes.attempt, 1);

  // At the deadline: the handler's signal fires, and Temporal times the attempt out.
  assert.equal(results[id("deadline")].error?.kind, "timeout", JSON.stringify(results[id("deadline")]));
  const timedOut = events("deadline", "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT")[0].activityTaskTimedOutEventAttributes.failure;
  assert.equal(timedOut.timeoutFailureInfo.timeoutType, "TIMEOUT_TYPE_START_TO_CLOSE");

  // Cancelling the workflow: the history records the cancellation request, and the worker drops
  // the request (tests/it/edge_activities.rs sees the connection close on its loopback edge).
  assert.equal(results[id("cancel")].error?.kind, "cancelled", JSON.stringify(results[id("cancel")]));
  assert.equal(events("cancel", "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED").length, 1);

  // The fixture logs each abort from the handler's own listener; a cancelled request's may come
  // a moment after the workflow has closed.
  const abortOf = (name) => edgeLines().find((l) => l.msg === "e2e abort seen" && l.key === key("hold", name));
  for (let i = 0; i < 50 && !(abortOf("deadline") && abortOf("cancel")); i++) await new Promise((r) => setTimeout(r, 200));
  const atDeadline = abortOf("deadline");
  assert.ok(atDeadline, `no abort seen at the deadline:\n${edge.output()}`);
  assert.ok(Math.abs(atDeadline.at - atDeadline.deadline) < 2000, JSON.stringify(atDeadline));
  cancelledAbort = abortOf("cancel");
  assert.ok(cancelledAbort, `no abort seen for the cancelled attempt, even at its deadline:\n${edge.output()}`);
  console.error(`checks 2 and 3 took ${took} ms`);
});

// The handler of the cancelled attempt above sees its signal fire when the worker drops the
// request, long before its deadline. Local workerd (Miniflare 4.20260426, direct socket or its
// entry worker) never fires `request.signal` when a client disconnects, so it fires only at the
// deadline here: docs/upstream/workerd-request-signal.md. Kept as a todo so it reports the day
// the runtime does.
it("cancelling the workflow aborts the handler's signal at once, not at its deadline", {
  todo: "local workerd does not fire request.signal on client disconnect (docs/upstream/workerd-request-signal.md)",
}, () => {
  assert.ok(cancelledAbort && cancelledAbort.at + 2_000 < cancelledAbort.deadline, `aborted at its deadline: ${JSON.stringify(cancelledAbort)}`);
});

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
