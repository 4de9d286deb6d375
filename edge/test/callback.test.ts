// Temporal's completion callbacks: attached to every start with a token for
// that run only; a callback is checked, answered at once with 2xx or 4xx
// (never 5xx), and followed up with Temporal, whose answer is what callers
// waiting on the run hear and what KV keeps.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { CALLBACK_PATH, callbackToken, linkedWorkflowId } from "../src/callback";
import { installUpstreams, type Upstreams } from "./fakes";
import { callWith, order, read } from "./helpers";
import { CALLBACK_KEYS, CALLBACKS } from "./vars";

let up: Upstreams;
let token: string;
beforeEach(async () => {
  up = await installUpstreams();
  token = await up.issuer.mint({ claims: { sub: `cb-${crypto.randomUUID()}`, roles: ["customer"] } });
});

const startWith = (vars: Record<string, string>, headers: Record<string, string> = {}) => callWith(vars, "/v1/workflows/order", { token, body: order(), headers });
const runToken = (id: string) => callbackToken(CALLBACK_KEYS, "default", id);
function callback(id: string, headers: Record<string, string> = {}, vars = CALLBACKS) {
  return callWith(vars, `${CALLBACK_PATH}?wf=${encodeURIComponent(id)}`, { method: "POST", raw: '{"ok":true}', headers: { "Content-Type": "application/json", ...headers } });
}
const link = (id: string) =>
  `<temporal:///namespaces/default/workflows/${encodeURIComponent(id)}/0199-run/history?eventID=1&eventType=WorkflowExecutionStarted&referenceType=EventReference>; type="temporal.api.common.v1.Link.WorkflowEvent"`;

describe("completion callbacks on start", () => {
  it("attaches one callback naming the run, with a token for that run only", async () => {
    const r = await read(await startWith(CALLBACKS));
    expect(r.status).toBe(202);
    const id = r.body.workflow_id;
    expect(up.temporal.runs.get(id)!.completionCallbacks).toEqual([
      { nexus: { url: `https://edge.test/v1/hooks/temporal-callback?wf=${id}`, header: { Authorization: `Bearer ${await runToken(id)}` } } },
    ]);
  });

  it("attaches none when CALLBACK_URL is not set (clusters that do not allow callbacks)", async () => {
    const r = await read(await startWith({}));
    expect(up.temporal.startCalls()[0].body).not.toHaveProperty("completionCallbacks");
    expect(up.temporal.runs.get(r.body.workflow_id)!.completionCallbacks).toEqual([]);
  });

  it("refuses to serve with a callback URL but no secret, or an http URL in production", async () => {
    const none = await read(await startWith({ CALLBACK_URL: CALLBACKS.CALLBACK_URL }));
    expect(none.body.type).toBe("urn:edgeflow:problem:misconfigured");
    const query = await read(await startWith({ ...CALLBACKS, CALLBACK_URL: "https://edge.test/cb?x=1" }));
    expect(query.body.type).toBe("urn:edgeflow:problem:misconfigured");
    const insecure = await read(await callWith({ ...CALLBACKS, ENVIRONMENT: "production", CALLBACK_URL: "http://edge.test/cb" }, "/healthz"));
    expect(insecure.status).toBe(500);
  });
});

describe("POST /v1/hooks/temporal-callback", () => {
  it("wakes a caller waiting on the run with what Temporal says, as soon as the callback arrives", async () => {
    up.temporal.onStart = (run) =>
      setTimeout(async () => {
        up.temporal.terminate(run.workflowId, "stopped by an operator");
        const res = await callback(run.workflowId, { Authorization: `Bearer ${await runToken(run.workflowId)}`, "Nexus-Link": link(run.workflowId) });
        expect(res.status).toBe(200);
      }, 200);
    const t0 = Date.now();
    const r = await read(await startWith(CALLBACKS, { Prefer: "wait=5" }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "terminated", error: { message: "stopped by an operator" } });
    expect(Date.now() - t0).toBeLessThan(2000);
    // Parked on the run's Durable Object, not long-polling Temporal.
    expect(up.temporal.calls.filter((c) => c.path.includes("waitNewEvent=true") && !c.path.includes("nextPageToken")).length).toBeLessThanOrEqual(1);
    expect(await env.RUN_STATUS.get(`run:${r.body.workflow_id}`, "json")).toMatchObject({ status: "terminated", run_id: r.body.run_id });
  });

  it("still answers a waiting caller at the deadline when no callback arrives (e.g. held by Temporal's circuit breaker)", async () => {
    up.temporal.onStart = (run) => setTimeout(() => up.temporal.complete(run.workflowId, { late: true }), 200);
    const r = await read(await startWith({ ...CALLBACKS, MAX_WAIT_SECONDS: "1" }, { Prefer: "wait=1" }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "completed", result: { late: true } });
  });

  it("answers 200 and records nothing for a run Temporal reports open (a token replayed from history)", async () => {
    const run = up.temporal.seed({ workflowId: `order-${crypto.randomUUID()}`, type: "order" });
    const t0 = Date.now();
    const res = await callback(run.workflowId, { Authorization: `Bearer ${await runToken(run.workflowId)}` });
    expect(res.status).toBe(200);
    // Followed up (describe, close event) without waiting for a close that a genuine callback comes after.
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await env.RUN_STATUS.get(`run:${run.workflowId}`)).toBeNull();
  });

  const refusals: [string, () => Promise<Response>, number, string | undefined][] = [
    ["no token", () => callback("order-a"), 401, "signature_missing"],
    ["a token for another run", async () => callback("order-a", { Authorization: `Bearer ${await runToken("order-b")}` }), 401, "signature_invalid"],
    ["a token under another key", async () => callback("order-a", { Authorization: `Bearer ${await callbackToken([new Uint8Array(32)], "default", "order-a")}` }), 401, "signature_invalid"],
    ["a token for another namespace", async () => callback("order-a", { Authorization: `Bearer ${await callbackToken(CALLBACK_KEYS, "other", "order-a")}` }), 401, "signature_invalid"],
    ["a Nexus-Link naming another run", async () => callback("order-a", { Authorization: `Bearer ${await runToken("order-a")}`, "Nexus-Link": link("order-b") }), 400, undefined],
    ["no workflow id", async () => callWith(CALLBACKS, CALLBACK_PATH, { method: "POST", headers: { Authorization: `Bearer ${await runToken("")}` } }), 400, undefined],
    ["callbacks switched off", async () => callback("order-a", { Authorization: `Bearer ${await runToken("order-a")}` }, {}), 404, undefined],
  ];
  for (const [what, send, status, code] of refusals) {
    it(`refuses ${what} with ${status} (a 4xx Temporal does not retry), without asking Temporal`, async () => {
      const r = await read(await send());
      expect(r.status).toBe(status);
      if (code) expect(r.body.code).toBe(code);
      expect(up.temporal.calls).toHaveLength(0);
    });
  }

  it("answers 200 even when Temporal cannot be asked: the follow-up fails after the answer, never the answer", async () => {
    up.temporal.faults.push({ status: 503 }, { status: 503 }, { status: 503 });
    const res = await callback("order-down", { Authorization: `Bearer ${await runToken("order-down")}` });
    expect(res.status).toBe(200);
  });
});

describe("Nexus-Link", () => {
  it("yields the escaped workflow id", () => {
    expect(linkedWorkflowId(link("order 42:xä?q"))).toBe("order 42:xä?q");
    expect(linkedWorkflowId("<https://example.com>")).toBeNull();
    expect(linkedWorkflowId(null)).toBeNull();
  });
});
