// The completion webhook: only correctly signed, fresh, first-seen deliveries
// are followed up, and what is then recorded is what Temporal says about the
// run, never the event's claim; rotation (several secrets) works.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { installUpstreams, type Upstreams } from "./fakes";
import { call, completion, order, postHook, read, sign } from "./helpers";
import { WEBHOOK_SECRET_NEW, WEBHOOK_SECRET_OLD } from "./vars";

let up: Upstreams;
beforeEach(async () => {
  up = await installUpstreams();
});

const newId = () => `order-${crypto.randomUUID().replaceAll("-", "")}`;
const hint = async (id: string) => env.RUN_STATUS.get(`run:${id}`, "json") as Promise<Record<string, any> | null>;
const now = () => Math.floor(Date.now() / 1000);

async function expectRejected(res: Response, code: string, id: string) {
  const r = await read(res);
  expect(r.status).toBe(401);
  expect(r.body.type).toBe("urn:edgeflow:problem:webhook-rejected");
  expect(r.body.code).toBe(code);
  expect(await hint(id)).toBeNull();
}

describe("POST /v1/hooks/temporal", () => {
  it("accepts a correctly signed event, then records what Temporal says about the run, not what the event says", async () => {
    const run = up.temporal.seed({ workflowId: newId(), type: "order" });
    up.temporal.complete(run.workflowId, { charged_cents: 2500 });
    const r = await read(await postHook(completion(run.workflowId, "any-run", { charged_cents: 1 })));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: "accepted" });
    expect(await eventually(() => hint(run.workflowId))).toMatchObject({
      workflow_id: run.workflowId,
      run_id: run.runId,
      workflow_type: "order",
      status: "completed",
      result: { charged_cents: 2500 },
      error: null,
    });
  });

  it("records nothing while Temporal reports the run open (a forged or early event), and Temporal's ending once it closes", async () => {
    const run = up.temporal.seed({ workflowId: newId(), type: "order" });
    expect((await postHook(completion(run.workflowId, run.runId, null, "workflow.failed"))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(await hint(run.workflowId)).toBeNull();
    up.temporal.terminate(run.workflowId, "operator");
    expect(await eventually(() => hint(run.workflowId))).toMatchObject({ status: "terminated", error: { message: "operator" } });
  });

  it("rejects a forged signature (signed with a key it does not know)", async () => {
    const id = newId();
    await expectRejected(await postHook(completion(id, "r"), { secret: "whsec_" + btoa("an-attackers-own-secret-32-bytes") }), "signature_invalid", id);
  });

  it("rejects a body changed after signing", async () => {
    const id = newId();
    const ts = now();
    const signed = JSON.stringify(completion(id, "r", { charged_cents: 1 }));
    const signature = await sign(WEBHOOK_SECRET_NEW, "msg_1", ts, signed);
    await expectRejected(await postHook(completion(id, "r", { charged_cents: 1_000_000 }), { id: "msg_1", ts, signature }), "signature_invalid", id);
  });

  it("rejects a truncated signature", async () => {
    const id = newId();
    const body = completion(id, "r");
    const ts = now();
    const good = await sign(WEBHOOK_SECRET_NEW, "msg_t", ts, JSON.stringify(body));
    await expectRejected(await postHook(body, { id: "msg_t", ts, signature: good.slice(0, 20) }), "signature_invalid", id);
    // Cut on a base64 quantum boundary too, so the truncated value still decodes.
    await expectRejected(await postHook(body, { id: "msg_t", ts, signature: good.slice(0, 3 + 24) }), "signature_invalid", id);
  });

  it("rejects timestamps more than 300 s in the past or future, and accepts those within", async () => {
    // The edge reads its clock a moment after the test does, which makes a past timestamp older
    // and a future one nearer: each case keeps a margin on the side that moment pushes it to.
    for (const skew of [-301, 310]) {
      const id = newId();
      await expectRejected(await postHook(completion(id, "r"), { ts: now() + skew }), "timestamp_out_of_window", id);
    }
    for (const skew of [-290, 299]) {
      const id = newId();
      expect((await postHook(completion(id, "r"), { ts: now() + skew })).status).toBe(200);
    }
  });

  it("rejects a delivery missing its headers", async () => {
    const id = newId();
    await expectRejected(await postHook(completion(id, "r"), { headers: { "webhook-signature": "" } }), "signature_missing", id);
  });

  it("drops a replayed webhook-id: the status is not rewritten", async () => {
    const id = newId();
    const body = completion(id, "run-1", { n: 1 });
    const ts = now();
    expect((await read(await postHook(body, { id: "msg_replay", ts }))).body.status).toBe("accepted");
    // Someone (or a retry) changes KV meanwhile; the replay must not touch it.
    await env.RUN_STATUS.put(`run:${id}`, JSON.stringify({ marker: "untouched" }));
    const replay = await read(await postHook(body, { id: "msg_replay", ts }));
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ status: "duplicate" });
    expect(await hint(id)).toEqual({ marker: "untouched" });
  });

  it("accepts every secret of a rotation, and a header listing an old and a new signature", async () => {
    const a = newId();
    expect((await postHook(completion(a, "r"), { secret: WEBHOOK_SECRET_OLD })).status).toBe(200);
    const b = newId();
    expect((await postHook(completion(b, "r"), { secret: WEBHOOK_SECRET_NEW })).status).toBe(200);
    const c = newId();
    const body = JSON.stringify(completion(c, "r"));
    const ts = now();
    const stale = await sign("whsec_" + btoa("retired-secret-retired-secret-32"), "msg_rot", ts, body);
    const fresh = await sign(WEBHOOK_SECRET_OLD, "msg_rot", ts, body);
    expect((await postHook(body, { id: "msg_rot", ts, signature: `${stale} ${fresh}` })).status).toBe(200);
  });

  it("refuses every delivery when no secret is configured", async () => {
    const { callWith } = await import("./helpers");
    const body = JSON.stringify(completion(newId(), "r"));
    const ts = now();
    const res = await callWith({ WEBHOOK_SECRETS: "" }, "/v1/hooks/temporal", {
      raw: body,
      headers: { "Content-Type": "application/json", "webhook-id": "m", "webhook-timestamp": String(ts), "webhook-signature": await sign(WEBHOOK_SECRET_NEW, "m", ts, body) },
      method: "POST",
    });
    expect(res.status).toBe(401);
  });

  it("answers 400 to a signed but malformed event and ignores unknown event types", async () => {
    const bad = await read(await postHook({ type: "workflow.completed", data: { workflow_id: "x" } }));
    expect(bad.status).toBe(400);
    const other = await read(await postHook({ type: "workflow.progress", data: {} }));
    expect(other.status).toBe(200);
    expect(other.body).toEqual({ status: "ignored" });
  });

  it("never wakes a waiting caller with the event's claim: the caller hears what Temporal says", async () => {
    const token = await up.issuer.mint({ claims: { sub: "frank", roles: ["customer"] } });
    const started = await read(await call("/v1/workflows/order", { token, body: order() }));
    const id = started.body.workflow_id;
    const waiting = call(`/v1/runs/${id}`, { token, headers: { Prefer: "wait=5" } });
    await new Promise((r) => setTimeout(r, 200));
    await postHook(completion(id, started.body.run_id, { shipped: "claimed" }));
    setTimeout(() => up.temporal.complete(id, { shipped: true }), 300);
    const r = await read(await waiting);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "completed", result: { shipped: true } });
  });
});

/** Polls `read` until it returns something other than null (the edge follows an event up after answering it). */
async function eventually<T>(read: () => Promise<T | null>, ms = 3000): Promise<T | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== null || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}
