// Signals and cancellation: only declared signals, only for callers whose roles
// allow them, payload validated with the approver set to the verified caller,
// and closed runs refused.
import { beforeEach, describe, expect, it } from "vitest";
import { decode, encode, installUpstreams, type Upstreams } from "./fakes";
import { call, order, read } from "./helpers";

let up: Upstreams;
let customer: string;
let approver: string;
let runId: string;

beforeEach(async () => {
  up = await installUpstreams();
  customer = await up.issuer.mint({ claims: { sub: "carol", roles: ["customer"] } });
  approver = await up.issuer.mint({ claims: { sub: "dave", email: "dave@example.com", roles: ["approver"] } });
  const started = await read(await call("/v1/workflows/order", { token: customer, body: order({ amount_cents: 500_000 }) }));
  runId = started.body.workflow_id;
});

function signal(name: string, token: string, body?: unknown, id = runId) {
  return call(`/v1/runs/${id}/signals/${name}`, { method: "POST", token, body });
}

describe("POST /v1/runs/{id}/signals/{name}", () => {
  it("delivers an approval from an approver, with the approver set to the caller's subject", async () => {
    const r = await read(await signal("approve", approver, { approver: "someone-else", reason: "looks fine" }));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ workflow_id: runId, signal: "approve", status: "accepted" });
    const sent = up.temporal.runs.get(runId)!.signals;
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ name: "approve", input: { approver: "dave", reason: "looks fine" }, identity: "edge:dave" });
  });

  it("accepts an empty body (the approver is filled in)", async () => {
    const r = await read(await signal("reject", approver));
    expect(r.status).toBe(202);
    expect(up.temporal.runs.get(runId)!.signals[0].input).toEqual({ approver: "dave" });
  });

  it("forwards the traceparent with the signal", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await call(`/v1/runs/${runId}/signals/approve`, { method: "POST", token: approver, body: {}, headers: { traceparent } });
    expect(decode(up.temporal.runs.get(runId)!.signals[0].header["_tracer-data"])).toEqual({ traceparent });
  });

  it("refuses an approval from a customer with 403, without asking Temporal", async () => {
    const before = up.temporal.calls.length;
    const r = await read(await signal("approve", customer, {}));
    expect(r.status).toBe(403);
    expect(r.body.type).toBe("urn:edgeflow:problem:forbidden");
    expect(up.temporal.calls.length).toBe(before);
    expect(up.temporal.runs.get(runId)!.signals).toHaveLength(0);
  });

  it("refuses a signal the workflow does not declare with 404, without asking Temporal", async () => {
    const before = up.temporal.calls.length;
    const admin = await up.issuer.mint({ claims: { sub: "root", roles: ["admin"] } });
    const r = await read(await signal("ship_now", admin, {}));
    expect(r.status).toBe(404);
    expect(up.temporal.calls.length).toBe(before);
  });

  it("validates the payload and names the offending field", async () => {
    const r = await read(await signal("approve", approver, { reason: 42, extra: true }));
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(["$.extra", "$.reason"]);
    expect(up.temporal.runs.get(runId)!.signals).toHaveLength(0);
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
  });

  it("answers 404 for an unknown run", async () => {
    const r = await read(await signal("approve", approver, {}, "order-doesnotexist"));
    expect(r.status).toBe(404);
  });

  it("answers 404 for a run of a workflow outside the manifest", async () => {
    up.temporal.seed({ workflowId: "internal-1", type: "internal_cleanup" });
    const r = await read(await signal("approve", approver, {}, "internal-1"));
    expect(r.status).toBe(404);
    expect(up.temporal.runs.get("internal-1")!.signals).toHaveLength(0);
  });

  it("honours grants per workflow and signal", async () => {
    // A deployment where approvers may reject but not approve.
    const { callWith } = await import("./helpers");
    const vars = { ROLE_GRANTS: JSON.stringify({ customer: ["start:order"], approver: ["signal:order.reject"] }) };
    const approve = await callWith(vars, `/v1/runs/${runId}/signals/approve`, { token: approver, body: {} });
    expect(approve.status).toBe(403);
    const reject = await callWith(vars, `/v1/runs/${runId}/signals/reject`, { token: approver, body: {} });
    expect(reject.status).toBe(202);
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
