// Edge activities inside workerd, with the real KV, D1 and Durable Object emulation: the
// worker's token is refused in every way an attacker would try (a counting activity proves
// nothing ran), two keys verify at once (rotation), failures carry their type and retryability,
// schemas name the field, the AbortSignal fires at the deadline and when the worker drops the
// request, and no activity reaches the edge's own records.
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { activityVars, mint, postActivity, probes, resetProbes, workerKey, type WorkerKey } from "./activity-helpers";
import { installUpstreams } from "./fakes";
import { call, callWith, order, read } from "./helpers";
import type { ActivityTokens } from "../src/activities/tokens";

let k1: WorkerKey;
let k2: WorkerKey;
let vars: Record<string, string>;

beforeAll(async () => {
  [k1, k2] = await Promise.all([workerKey("worker-1"), workerKey("worker-2")]);
  vars = activityVars([k1]);
});
beforeEach(() => resetProbes());
afterEach(() => vi.restoreAllMocks());

async function answer(r: Promise<{ res: Response }>) {
  return read((await r).res);
}

describe("POST /v1/activities/{name}: refusals run nothing", () => {
  const body = JSON.stringify({ n: 1 });
  const refusals: [string, () => Promise<{ res: Response }>, number, string | null][] = [
    ["no token", () => postActivity("test.count", { vars, key: k1, body, headers: { Authorization: "" } }), 401, "missing_credentials"],
    ["forged: signed by a key the edge does not hold, under a kid it does", async () => postActivity("test.count", { vars, key: { ...(await workerKey("worker-1")) }, body }), 401, "invalid_signature"],
    ["unknown kid", async () => postActivity("test.count", { vars, key: await workerKey("stranger"), body }), 401, "unknown_key"],
    ["expired", () => postActivity("test.count", { vars, key: k1, body, mint: { iat: Math.floor(Date.now() / 1000) - 120, lifetime: 30 } }), 401, "token_expired"],
    ["issued in the future", () => postActivity("test.count", { vars, key: k1, body, mint: { iat: Math.floor(Date.now() / 1000) + 300 } }), 401, "token_not_yet_valid"],
    ["lives longer than 60 s", () => postActivity("test.count", { vars, key: k1, body, mint: { lifetime: 61 } }), 401, "token_lifetime_too_long"],
    ["other audience", () => postActivity("test.count", { vars, key: k1, body, mint: { audience: "https://other-edge.test" } }), 401, "wrong_audience"],
    ["other issuer", () => postActivity("test.count", { vars, key: k1, body, mint: { issuer: "edgeflow-edge" } }), 401, "wrong_issuer"],
    ["body hash of another body", async () => postActivity("test.count", { vars, key: k1, body, token: await mint({ key: k1, name: "test.count", body: JSON.stringify({ n: 2 }) }) }), 401, "binding_mismatch"],
    ["minted for another activity", async () => postActivity("test.count", { vars, key: k1, body, token: await mint({ key: k1, name: "kv.put", body }) }), 401, "binding_mismatch"],
    ["another workflow's headers", () => postActivity("test.count", { vars, key: k1, body, headers: { "Edgeflow-Workflow-Id": "order-o-2", "Idempotency-Key": "order-o-2/1" } }), 401, "binding_mismatch"],
    ["another attempt's header", () => postActivity("test.count", { vars, key: k1, body, headers: { "Edgeflow-Attempt": "2" } }), 401, "binding_mismatch"],
    ["an Idempotency-Key of another activity", () => postActivity("test.count", { vars, key: k1, body, headers: { "Idempotency-Key": "order-o-1/2" } }), 401, "binding_mismatch"],
    ["a query string the token does not name", () => postActivity("test.count", { vars, key: k1, body, mint: { claims: { htu: "/v1/activities/test.count?x=1" } } }), 401, "binding_mismatch"],
    ["missing binding claims", () => postActivity("test.count", { vars, key: k1, body, mint: { claims: { bsh: undefined } } }), 401, "malformed_token"],
    ["undeclared name", () => postActivity("test.nope", { vars, key: k1, body }), 404, null],
    // The worker fails a 400 retryably (skew heals; the next attempt has a fresh deadline), a 413 for good.
    ["a deadline already past by the edge's clock", () => postActivity("test.count", { vars, key: k1, body, deadline: Date.now() - 1000 }), 400, null],
    ["no deadline", () => postActivity("test.count", { vars, key: k1, body, headers: { "Edgeflow-Deadline": "" } }), 400, null],
    ["a body over 1 MiB", () => postActivity("test.count", { vars, key: k1, body: JSON.stringify({ n: 1, pad: "x".repeat(1024 * 1024) }) }), 413, null],
    ["edge activities off (no ACTIVITY_KEYS)", () => postActivity("test.count", { vars: { ACTIVITY_KEYS: "" }, key: k1, body }), 404, null],
  ];
  for (const [name, send, status, code] of refusals) {
    it(`${status} ${code ?? ""}: ${name}`, async () => {
      const r = await answer(send());
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      if (code) expect(r.body.code).toBe(code);
      expect(probes.runs).toBe(0);
    });
  }

  it("accepts a token once: the replay gets 401 and runs nothing", async () => {
    const first = await postActivity("test.count", { vars, key: k1, body });
    expect(first.res.status).toBe(200);
    const replay = await read((await postActivity("test.count", { vars, key: k1, body, token: first.token })).res);
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe("token_replayed");
    expect(probes.runs).toBe(1);
  });

  it("refuses a second use of a jti even while two requests race", async () => {
    const token = await mint({ key: k1, name: "test.count", body });
    const both = await Promise.all([postActivity("test.count", { vars, key: k1, body, token }), postActivity("test.count", { vars, key: k1, body, token })]);
    expect(both.map((b) => b.res.status).sort()).toEqual([200, 401]);
    expect(probes.runs).toBe(1);
  });
});

describe("ActivityTokens", () => {
  it("forgets a jti once its token has expired: lazily on the next claim, and by its alarm when idle", async () => {
    // A shard of its own (no real jti starts with "."), so the counts are this test's.
    const shard = env.ACTIVITY_TOKENS.get(env.ACTIVITY_TOKENS.idFromName("jti:.."));
    await runInDurableObject(shard, async (tokens: ActivityTokens, state) => {
      const expired = () => state.storage.sql.exec("INSERT INTO seen (jti, expires_ms) VALUES (?, ?)", `..old-${crypto.randomUUID()}`, Date.now() - 1);
      expired();
      expect(await tokens.claim("..new", Date.now() + 60_000)).toBe("fresh");
      expect(await tokens.claim("..new", Date.now() + 60_000)).toBe("replayed");
      expect(await tokens.size()).toBe(1);
      expired();
      expect(await tokens.size()).toBe(2);
      await tokens.alarm();
      expect(await tokens.size()).toBe(1);
    });
  });
});

describe("keys", () => {
  it("verifies with either of two keys while the worker's key rotates", async () => {
    const rotating = activityVars([k1, k2]);
    for (const key of [k1, k2, k1]) expect((await postActivity("test.count", { vars: rotating, key, input: {} })).res.status).toBe(200);
    expect(probes.runs).toBe(3);
  });

  it("refuses to serve with a private key, three keys or no replay store in ACTIVITY_KEYS", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const k3 = await workerKey("worker-3");
    const bads = [
      JSON.stringify({ keys: [{ ...k1.publicJwk, d: "secret-part" }] }),
      JSON.stringify({ keys: [k1.publicJwk, k2.publicJwk, k3.publicJwk] }),
      JSON.stringify([k1.publicJwk]),
    ];
    for (const ACTIVITY_KEYS of bads) expect((await callWith({ ACTIVITY_KEYS }, "/healthz")).status).toBe(500);
    const lines = errors.mock.calls.map((c) => String(c[0])).join("\n");
    expect(lines).toMatch(/ACTIVITY_KEYS: key 1 \(kid .*worker-1.*\): holds a private key/);
    expect(lines).toMatch(/ACTIVITY_KEYS: 3 keys, expected 1 or 2/);
    expect(lines).toMatch(/ACTIVITY_KEYS: not a JWKS/);
    expect(lines).not.toMatch(/secret-part/);
  });
});

describe("answers", () => {
  it("answers 200 with the output, and logs on the worker's trace with the activity's ids", async () => {
    const logs = vi.spyOn(console, "log").mockImplementation(() => {});
    const r = await answer(postActivity("test.count", { vars, key: k1, input: { n: 1 }, workflowId: "order-o-9", activityId: "4", attempt: 2 }));
    expect(r).toMatchObject({ status: 200, body: { runs: 1 } });
    const line = logs.mock.calls.map((c) => JSON.parse(String(c[0]))).find((l) => l.msg === "counted");
    expect(line).toMatchObject({ trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", activity: "edge.test.count", workflow_id: "order-o-9", run_id: "run-1", activity_id: "4", attempt: 2 });
  });

  it("says which failures Temporal may retry: a plain Error and a retryable ActivityError yes, a non-retryable one no", async () => {
    const cases: [string, string, boolean][] = [
      ["plain", "Error", false],
      ["retryable", "Busy", false],
      ["non_retryable", "CardDeclined", true],
    ];
    for (const [mode, type, nonRetryable] of cases) {
      const r = await answer(postActivity("test.fail", { vars, key: k1, input: { mode } }));
      expect(r.status).toBe(422);
      expect(r.headers.get("Content-Type")).toBe("application/problem+json");
      expect(r.body).toMatchObject({ type: "urn:edgeflow:problem:activity-failed", status: 422, error: { type, non_retryable: nonRetryable } });
    }
  });

  it("fails an input or output that breaks its schema non-retryably, naming the field", async () => {
    const bad = await answer(postActivity("kv.put", { vars, key: k1, input: { key: 5 } }));
    expect(bad.status).toBe(422);
    expect(bad.body.error).toMatchObject({ type: "InvalidInput", non_retryable: true });
    expect(bad.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: "$.key" }), { path: "$.value", message: "is required" }]));
    expect(bad.body.error.message).toContain("$.key");

    const d1 = await answer(postActivity("d1.execute", { vars, key: k1, input: { statement: "order_event.record", params: { status: "paid" } } }));
    expect(d1.body.errors).toEqual([{ path: "$.params.order_id", message: "is required" }]);

    const out = await answer(postActivity("test.fail", { vars, key: k1, input: { mode: "bad_output" } }));
    expect(out.body.error).toMatchObject({ type: "InvalidOutput", non_retryable: true });
    expect(out.body.errors[0].path).toBe("$.n");

    const notJson = await answer(postActivity("kv.put", { vars, key: k1, body: "{" }));
    expect(notJson.body.error).toMatchObject({ type: "InvalidInput", non_retryable: true });
  });

  it("aborts the handler's signal at the deadline, and when the worker drops the request", async () => {
    // Far enough ahead that a loaded machine still reaches the handler before it.
    const late = await answer(postActivity("test.wait", { vars, key: k1, deadline: Date.now() + 700 }));
    expect(late.status).toBe(422);
    expect(late.body.error).toMatchObject({ type: "DeadlineExceeded", non_retryable: false });

    // The worker drops the request once the handler is running.
    const dropped = new AbortController();
    probes.waiting = () => dropped.abort();
    const cancelled = await answer(postActivity("test.wait", { vars, key: k1, signal: dropped.signal }));
    expect(cancelled.body.error).toMatchObject({ type: "Cancelled", non_retryable: false });
    expect(probes.aborted).toEqual(["TimeoutError", "AbortError"]);
  });
});

describe("shipped activities and the edge's own records", () => {
  it("kv.put writes ACTIVITY_KV with an expiration, kv.delete removes it", async () => {
    const key = `order-status/o-${crypto.randomUUID().slice(0, 8)}`;
    const value = JSON.stringify({ status: "paid", updated_at: "2026-12-06T12:00:00Z" });
    const put = await answer(postActivity("kv.put", { vars, key: k1, input: { key, value, expiration_ttl_secs: 3600 } }));
    expect(put).toMatchObject({ status: 200, body: { key } });
    const stored = await env.ACTIVITY_KV.getWithMetadata(key);
    expect(stored.value).toBe(value);
    expect(await env.RUN_STATUS.get(key)).toBeNull();
    const del = await answer(postActivity("kv.delete", { vars, key: k1, input: { key }, activityId: "2" }));
    expect(del).toMatchObject({ status: 200, body: { key, deleted: true } });
    expect(await env.ACTIVITY_KV.get(key)).toBeNull();
  });

  it("d1.execute records once per activity: a retried attempt writes no second row", async () => {
    const orderId = `o-${crypto.randomUUID().slice(0, 8)}`;
    const input = { statement: "order_event.record", params: { order_id: orderId, status: "paid" } };
    const first = await answer(postActivity("d1.execute", { vars, key: k1, input, workflowId: `order-${orderId}`, activityId: "3" }));
    const retry = await answer(postActivity("d1.execute", { vars, key: k1, input, workflowId: `order-${orderId}`, activityId: "3", attempt: 2 }));
    expect([first.body.rows_written, retry.body.rows_written]).toEqual([1, 0]);
    const rows = await env.ACTIVITY_DB.prepare("SELECT order_id, status FROM order_events WHERE order_id = ?").bind(orderId).all();
    expect(rows.results).toEqual([{ order_id: orderId, status: "paid" }]);
  });

  it("gives handlers only the activity bindings, refuses the edge's key prefixes, and GET /v1/runs still answers what Temporal says", async () => {
    await postActivity("test.count", { vars, key: k1, input: {} });
    expect(probes.envKeys).toEqual([["ACTIVITY_DB", "ACTIVITY_KV"]]);

    const up = await installUpstreams();
    const owner = await up.issuer.mint({ claims: { sub: "alice", roles: ["customer"] } });
    const run = (await read(await call("/v1/workflows/order", { token: owner, body: order() }))).body;
    const forged = JSON.stringify({ workflow_id: run.workflow_id, run_id: run.run_id, workflow_type: "order", status: "completed", result: { forged: true }, error: null });
    for (const key of [`run:${run.workflow_id}`, `RUN:${run.workflow_id}`, "hook:msg_1", "owner:x"]) {
      const r = await answer(postActivity("kv.put", { vars, key: k1, input: { key, value: forged } }));
      expect(r.body.error, key).toMatchObject({ type: "ReservedKey", non_retryable: true });
    }
    // Even written by other means, a hint in ACTIVITY_KV is not a record the edge reads.
    await env.ACTIVITY_KV.put(`run:${run.workflow_id}`, forged);
    const seen = await read(await call(`/v1/runs/${run.workflow_id}`, { token: owner }));
    expect(seen.body).toMatchObject({ status: "running", result: null });
    expect(await env.RUN_STATUS.get(`run:${run.workflow_id}`)).toBeNull();
  });
});
