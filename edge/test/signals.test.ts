// Signals, updates and cancellation: only declared names, only for callers whose
// roles allow them, payload checked with the approver set to the verified
// caller, approve/reject sent as updates (the approver hears the outcome), and
// closed runs refused.
import { beforeEach, describe, expect, it } from "vitest";
import { defaultDeps } from "../src/app";
import { INVALID_INPUT } from "../src/routes";
import { Catalog } from "../src/schemas";
import { decode, encode, installUpstreams, type Upstreams } from "./fakes";
import { call, callWith, order, read } from "./helpers";

let up: Upstreams;
let customer: string;
let approver: string;
let runId: string;

beforeEach(async () => {
  up = await installUpstreams();
  customer = await up.issuer.mint({ claims: { sub: "carol", roles: ["customer"] } });
  approver = await up.issuer.mint({ claims: { sub: "dave", email: "dave@example.com", roles: ["approver"] } });
  const started = await read(await call("/v1/workflows/order", { token: customer, body: order({ items: [{ sku: "SKU-1", quantity: 4, unit_price_cents: 125_000 }] }) }));
  runId = started.body.workflow_id;
});

function signal(name: string, token: string, body?: unknown, id = runId, headers: Record<string, string> = {}) {
  return call(`/v1/runs/${id}/signals/${name}`, { method: "POST", token, body, headers });
}

describe("POST /v1/runs/{id}/signals/{name}: approve and reject are updates", () => {
  it("applies an approval and answers 200 with the decision, the approver set to the caller's subject", async () => {
    const r = await read(await signal("approve", approver, { approver: "someone-else", reason: "looks fine" }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      workflow_id: runId,
      run_id: up.temporal.runs.get(runId)!.runId,
      signal: "approve",
      status: "applied",
      result: { state: "approved", approver: "dave", reason: "looks fine" },
      links: { self: `/v1/runs/${runId}` },
    });
    const run = up.temporal.runs.get(runId)!;
    expect(run.signals).toHaveLength(0);
    expect(run.updates).toHaveLength(1);
    expect(run.updates[0]).toMatchObject({ name: "approve", input: { approver: "dave", reason: "looks fine" }, identity: "edge:dave" });
  });

  it("accepts an empty body (the approver is filled in)", async () => {
    const r = await read(await signal("reject", approver));
    expect(r.status).toBe(200);
    expect(up.temporal.runs.get(runId)!.updates[0].input).toEqual({ approver: "dave" });
  });

  it("forwards the traceparent with the update", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await call(`/v1/runs/${runId}/signals/approve`, { method: "POST", token: approver, body: {}, headers: { traceparent, "X-Request-Id": "req-approve" } });
    const data = decode(up.temporal.runs.get(runId)!.updates[0].header["_tracer-data"]) as Record<string, string>;
    expect(data.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(data.baggage).toBe("edge_request_id=req-approve,edge_subject=dave");
  });

  it("answers 409 with the workflow's reason when it refuses the decision", async () => {
    up.temporal.onUpdate = () => ({ failure: "the order was already approved" });
    const r = await read(await signal("reject", approver, {}));
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ type: "urn:edgeflow:problem:decision-refused", detail: "the order was already approved" });
  });

  const invalidFields = [
    { path: "$.approver", pointer: "/approver", detail: "is required" },
    { path: "$.reason", pointer: "/reason", detail: "5 is not of type string or null" },
    { path: '$["a b"]', pointer: "/a b", detail: "is not allowed" },
  ];
  const invalidMessage = 'invalid input: $.approver: is required; $.reason: 5 is not of type string or null; $["a b"]: is not allowed';

  it("answers 422 naming each field from the InvalidInput failure's details", async () => {
    // As the worker refuses it: the SDK's untyped failure around the typed one (its cause). The
    // words say less than the details here, so the answer shows which the edge read.
    const details = { errors: invalidFields.map((e) => ({ path: e.path, message: e.detail })) };
    const message = "invalid input: see the details";
    up.temporal.onUpdate = () => ({
      failure: {
        message,
        applicationFailureInfo: {},
        cause: { message, applicationFailureInfo: { type: INVALID_INPUT, nonRetryable: true, details: { payloads: [encode(details)] } } },
      },
    });
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual(invalidFields);
  });

  it("answers 422 from an InvalidInput failure whose details it cannot read, with the failure's words", async () => {
    up.temporal.onUpdate = () => ({ failure: { message: "refused", applicationFailureInfo: { type: INVALID_INPUT, details: { payloads: [encode(["not", "an", "object"])] } } } });
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([{ path: "$", pointer: "", detail: "refused" }]);
  });

  // Workers from before typed refusals said it only in the message.
  it("answers 422 naming each field from an untyped refusal's message (the older workers' form)", async () => {
    up.temporal.onUpdate = () => ({ failure: invalidMessage });
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual(invalidFields);
  });

  it("answers 409 run-closed when the run closed before the decision landed", async () => {
    up.temporal.onUpdate = () => "closed";
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(409);
    expect(r.body.type).toBe("urn:edgeflow:problem:run-closed");
  });

  it("answers 409 run-closed when the run closed while the decision was in flight and Temporal says not found", async () => {
    up.temporal.onUpdate = (run) => {
      up.temporal.complete(run.workflowId, { status: "completed" });
      return "not-found";
    };
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(409);
    expect(r.body.type).toBe("urn:edgeflow:problem:run-closed");
  });

  it("still answers 404 when Temporal says not found and the run is open", async () => {
    up.temporal.onUpdate = () => "not-found";
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(404);
  });

  it("asks again with the same update id while no worker has taken it, and one key makes one update", async () => {
    let calls = 0;
    up.temporal.onUpdate = (_, __, input) => (++calls < 3 ? "admitted" : { success: { state: "approved", approver: input.approver, reason: null } });
    const r = await read(await signal("approve", approver, {}, runId, { "Idempotency-Key": "decide-1" }));
    expect(r.status).toBe(200);
    const ids = up.temporal.runs.get(runId)!.updateCalls.map((u) => u.updateId);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    // The same key again names the same update (Temporal answers it with the first outcome).
    await signal("approve", approver, {}, runId, { "Idempotency-Key": "decide-1" });
    expect(new Set(up.temporal.runs.get(runId)!.updateCalls.map((u) => u.updateId)).size).toBe(1);
  });

  it("answers 202 pending when no worker takes the decision before the wait ends", async () => {
    up.temporal.onUpdate = () => "admitted";
    const t0 = Date.now();
    const r = await read(await signal("approve", approver, {}, runId, { Prefer: "wait=1" }));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ workflow_id: runId, signal: "approve", status: "pending" });
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  it("refuses an approval from a customer with 403, without asking Temporal", async () => {
    const before = up.temporal.calls.length;
    const r = await read(await signal("approve", customer, {}));
    expect(r.status).toBe(403);
    expect(r.body.type).toBe("urn:edgeflow:problem:forbidden");
    expect(up.temporal.calls.length).toBe(before);
  });

  it("refuses a signal the workflow does not declare with 404, without asking Temporal", async () => {
    const before = up.temporal.calls.length;
    const admin = await up.issuer.mint({ claims: { sub: "root", roles: ["admin"] } });
    const r = await read(await signal("ship_now", admin, {}));
    expect(r.status).toBe(404);
    expect(up.temporal.calls.length).toBe(before);
  });

  it("validates the payload and names the offending field; nothing reaches the run", async () => {
    const r = await read(await signal("approve", approver, { reason: 42, extra: true }));
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(["$.extra", "$.reason"]);
    expect(up.temporal.runs.get(runId)!.updateCalls).toHaveLength(0);
  });

  it("refuses a lone surrogate in the payload, before asking Temporal", async () => {
    const before = up.temporal.calls.length;
    const r = await read(await call(`/v1/runs/${runId}/signals/approve`, { method: "POST", token: approver, raw: '{"reason":"\\ud800"}', headers: { "Content-Type": "application/json" } }));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([{ path: "$.reason", pointer: "/reason", detail: "is not well-formed Unicode (a lone surrogate)" }]);
    expect(up.temporal.calls.length).toBe(before);
  });

  it("refuses a non-object payload with 422", async () => {
    const r = await read(await signal("approve", approver, ["yes"]));
    expect(r.status).toBe(422);
  });

  it("answers 409 for a run that has finished", async () => {
    up.temporal.complete(runId, { ok: true });
    const r = await read(await signal("approve", approver, {}));
    expect(r.status).toBe(409);
    expect(r.body.type).toBe("urn:edgeflow:problem:run-closed");
    expect(up.temporal.runs.get(runId)!.updateCalls).toHaveLength(0);
  });

  it("answers 404 for an unknown run", async () => {
    const r = await read(await signal("approve", approver, {}, "order-doesnotexist"));
    expect(r.status).toBe(404);
  });

  it("answers 404 for a run of a workflow outside the manifest", async () => {
    up.temporal.seed({ workflowId: "internal-1", type: "internal_cleanup" });
    const r = await read(await signal("approve", approver, {}, "internal-1"));
    expect(r.status).toBe(404);
    expect(up.temporal.runs.get("internal-1")!.updateCalls).toHaveLength(0);
  });

  it("honours grants per workflow and signal", async () => {
    // A deployment where approvers may reject but not approve.
    const vars = { ROLE_GRANTS: JSON.stringify({ customer: ["start:order"], approver: ["signal:order.reject"] }) };
    const approve = await callWith(vars, `/v1/runs/${runId}/signals/approve`, { token: approver, body: {} });
    expect(approve.status).toBe(403);
    const reject = await callWith(vars, `/v1/runs/${runId}/signals/reject`, { token: approver, body: {} });
    expect(reject.status).toBe(200);
  });
});

describe("POST /v1/runs/{id}/signals/{name}: a signal that is not an update", () => {
  it("is sent as a signal and answered 202", async () => {
    const catalog = Catalog.fromManifest(
      { version: 1, workflows: [{ name: "order", task_queue: "edgeflow", input: null, signals: [{ name: "note", input: "note.json" }], updates: [], queries: [] }] },
      { "note.json": { type: "object", properties: { text: { type: "string" } }, required: ["text"], additionalProperties: false } },
    );
    const admin = await up.issuer.mint({ claims: { sub: "root", roles: ["admin"] } });
    const r = await read(await callWith({}, `/v1/runs/${runId}/signals/note`, { token: admin, body: { text: "hi" } }, { ...defaultDeps(), catalog }));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ signal: "note", status: "accepted" });
    expect(up.temporal.runs.get(runId)!.signals).toEqual([expect.objectContaining({ name: "note", input: { text: "hi" }, identity: "edge:root" })]);
  });
});

describe("POST /v1/runs/{id}/cancel", () => {
  it("lets the caller who started the run cancel it", async () => {
    const r = await read(await call(`/v1/runs/${runId}/cancel`, { method: "POST", token: customer }));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ workflow_id: runId, status: "cancel_requested" });
    expect(up.temporal.runs.get(runId)!.cancelRequests).toEqual([{ identity: "edge:carol", reason: "canceled through the edge by carol" }]);
  });

  it("refuses another customer with 403", async () => {
    const stranger = await up.issuer.mint({ claims: { sub: "eve", roles: ["customer"] } });
    const r = await read(await call(`/v1/runs/${runId}/cancel`, { method: "POST", token: stranger }));
    expect(r.status).toBe(403);
    expect(up.temporal.runs.get(runId)!.cancelRequests).toHaveLength(0);
  });

  it("lets an admin cancel anyone's run", async () => {
    const admin = await up.issuer.mint({ claims: { sub: "root", roles: ["admin"] } });
    expect((await call(`/v1/runs/${runId}/cancel`, { method: "POST", token: admin })).status).toBe(202);
  });

  it("answers 409 when the run has already finished", async () => {
    up.temporal.fail(runId, "boom");
    const r = await read(await call(`/v1/runs/${runId}/cancel`, { method: "POST", token: customer }));
    expect(r.status).toBe(409);
  });

  it("treats runs started outside the edge as owned by nobody", async () => {
    up.temporal.seed({ workflowId: "order-elsewhere", type: "order", memo: { edge_subject: encode("carol-impostor") } });
    const r = await read(await call(`/v1/runs/order-elsewhere/cancel`, { method: "POST", token: customer }));
    expect(r.status).toBe(403);
  });
});
