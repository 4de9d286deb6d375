// Reading a run: always what Temporal says (describe, and the close event, kept
// in KV for that run id); only the owner or a reader role sees a run; Temporal
// failures map to 502/503/504 without leaking upstream bodies.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { installUpstreams, type Upstreams } from "./fakes";
import { call, completion, order, postHook, read } from "./helpers";

let up: Upstreams;
let owner: string;
let id: string;
let runId: string;

beforeEach(async () => {
  up = await installUpstreams();
  owner = await up.issuer.mint({ claims: { sub: `owner-${crypto.randomUUID()}`, roles: ["customer"] } });
  const started = await read(await call("/v1/workflows/order", { token: owner, body: order() }));
  id = started.body.workflow_id;
  runId = started.body.run_id;
});

describe("GET /v1/runs/{id}", () => {
  it("shows a running run from Temporal's describe", async () => {
    const r = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ workflow_id: id, run_id: runId, workflow_type: "order", status: "running", result: null, error: null, links: { self: `/v1/runs/${id}` } });
  });

  it("never says finished while Temporal says running, whatever a completion event claimed", async () => {
    await postHook(completion(id, runId, { total: 2500 }));
    const r = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "running", result: null });
    up.temporal.complete(id, { total: 99 });
  });

  it("reads the result from the close event once, then from KV for that same run (asking Temporal for the status each time)", async () => {
    up.temporal.complete(id, { total: 99 });
    const first = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(first.body).toMatchObject({ status: "completed", result: { total: 99 }, error: null });
    // The hint is written after the answer (waitUntil).
    for (let i = 0; i < 100 && !(await env.RUN_STATUS.get(`run:${id}`)); i++) await new Promise((r) => setTimeout(r, 20));
    const second = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(second.body).toEqual(first.body);
    expect(up.temporal.calls.filter((c) => c.path.includes(`${id}/history`)).length).toBe(1);
    expect(up.temporal.calls.filter((c) => c.method === "GET" && c.path.endsWith(id)).length).toBe(2);
  });

  it("trusts Temporal over a hint for another run", async () => {
    await env.RUN_STATUS.put(`run:${id}`, JSON.stringify({ workflow_id: id, run_id: "some-older-run", workflow_type: "order", status: "completed", result: { stale: true }, error: null }));
    const r = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(r.body.status).toBe("running");
    up.temporal.fail(id, "declined");
    const done = await read(await call(`/v1/runs/${id}`, { token: owner }));
    expect(done.body).toMatchObject({ status: "failed", result: null, error: { message: "declined" } });
  });

  it("holds a Prefer: wait read until Temporal closes the run", async () => {
    setTimeout(() => up.temporal.terminate(id, "operator"), 200);
    const r = await read(await call(`/v1/runs/${id}`, { token: owner, headers: { Prefer: "wait=5" } }));
    expect(r.body).toMatchObject({ status: "terminated", error: { message: "operator" } });
  });

  it("refuses another customer with 403 and lets a reader role see it", async () => {
    const stranger = await up.issuer.mint({ claims: { sub: "mallory", roles: ["customer"] } });
    expect((await call(`/v1/runs/${id}`, { token: stranger })).status).toBe(403);
    up.temporal.complete(id, {});
    expect((await call(`/v1/runs/${id}`, { token: stranger })).status).toBe(403);
    const approver = await up.issuer.mint({ claims: { sub: "dave", roles: ["approver"] } });
    expect((await call(`/v1/runs/${id}`, { token: approver })).status).toBe(200);
  });

  it("answers 401 without credentials and 404 for an unknown run", async () => {
    expect((await call(`/v1/runs/${id}`)).status).toBe(401);
    const r = await read(await call(`/v1/runs/order-unknown`, { token: owner }));
    expect(r.status).toBe(404);
    expect(r.body.type).toBe("urn:edgeflow:problem:not-found");
  });

  it("answers 404 for ids the edge could never have created, without asking Temporal", async () => {
    const before = up.temporal.calls.length;
    expect((await call(`/v1/runs/${encodeURIComponent("a b/../c")}`, { token: owner })).status).toBe(404);
    expect(up.temporal.calls.length).toBe(before);
  });
});

describe("Temporal failures", () => {
  const cases = [
    { fault: { status: 503 } as const, status: 502, type: "upstream-unavailable" },
    { fault: { status: 500 } as const, status: 502, type: "upstream-unavailable" },
    { fault: "network" as const, status: 502, type: "upstream-unavailable" },
    { fault: { status: 429 } as const, status: 503, type: "upstream-busy" },
    { fault: "hang" as const, status: 504, type: "upstream-timeout" },
    { fault: { status: 504 } as const, status: 504, type: "upstream-timeout" },
  ];
  for (const c of cases) {
    it(`maps ${JSON.stringify(c.fault)} to ${c.status} ${c.type}`, async () => {
      up.temporal.faults.push(c.fault);
      const r = await read(await call(`/v1/runs/${id}`, { token: owner }));
      expect(r.status).toBe(c.status);
      expect(r.body.type).toBe(`urn:edgeflow:problem:${c.type}`);
      // Upstream bodies and addresses never reach the caller.
      const text = JSON.stringify(r.body);
      expect(text).not.toContain("secret internals");
      expect(text).not.toContain("temporal.test");
    });
  }

  it("maps a failing start to 502 and keeps no half-started state", async () => {
    up.temporal.faults.push({ status: 500 });
    const r = await read(await call("/v1/workflows/order", { token: owner, body: order() }));
    expect(r.status).toBe(502);
    expect(up.temporal.runs.size).toBe(1);
  });
});
