// Starting workflows: what reaches Temporal (full-form payloads, identity in
// memo and search attributes, trace context in the header, the API key), input
// validation with field paths, idempotent starts, and Prefer: wait.
import { beforeEach, describe, expect, it, vi } from "vitest";
import { defaultDeps } from "../src/app";
import { Catalog, canonicalHash, SEARCH_ATTRIBUTES } from "../src/schemas";
import { encodePayload } from "../src/temporal";
import { decode, installUpstreams, type Upstreams } from "./fakes";
import { call, callWith, completion, order, postHook, read } from "./helpers";
import { nameCaller } from "../src/scope";

let up: Upstreams;
let token: string;
beforeEach(async () => {
  up = await installUpstreams();
  token = await up.issuer.mint({ claims: { sub: `user-${crypto.randomUUID()}`, email: "alice@example.com", roles: ["customer"] } });
});

function start(body: unknown, headers: Record<string, string> = {}, t = token) {
  return call("/v1/workflows/order", { token: t, body, headers });
}

describe("POST /v1/workflows/{name}", () => {
  it("starts the run and answers 202 with its location at once", async () => {
    const input = order();
    const r = await read(await start(input, { "X-Request-Id": "req-123" }));
    expect(r.status).toBe(202);
    // An order's run is named after its order id, behind the caller's scope: the same order from the
    // same caller is one run.
    expect(r.body.workflow_id).toMatch(new RegExp(`^order-[0-9a-f]{20}-${input.order_id}$`));
    expect(r.headers.get("Location")).toBe(`/v1/runs/${r.body.workflow_id}`);
    expect(r.headers.get("X-Request-Id")).toBe("req-123");
    expect(r.body).toMatchObject({ status: "running", workflow_type: "order", links: { self: `/v1/runs/${r.body.workflow_id}` } });

    const run = up.temporal.runs.get(r.body.workflow_id)!;
    expect(r.body.run_id).toBe(run.runId);
    expect(run.type).toBe("order");
    expect(run.taskQueue).toBe("edgeflow");
    expect(run.input).toEqual(input);
  });

  it("sends every payload in full form (the shorthand would turn [] into null)", async () => {
    const r = await read(await start(order()));
    const run = up.temporal.runs.get(r.body.workflow_id)!;
    const full = { metadata: { encoding: "anNvbi9wbGFpbg==" }, data: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) };
    expect(run.rawInput).toEqual({ payloads: [full] });
    for (const field of Object.values(run.memo)) expect(field).toEqual(full);
    for (const field of Object.values(run.searchAttributes)) expect(field).toEqual(full);
  });

  it("puts the caller's identity and the request id into memo and search attributes", async () => {
    const r = await read(await start(order(), { "X-Request-Id": "req-abc" }));
    const run = up.temporal.runs.get(r.body.workflow_id)!;
    const sub = decode(run.memo.edge_subject) as string;
    expect(sub).toMatch(/^user-/);
    expect(decode(run.memo.edge_email)).toBe("alice@example.com");
    expect(decode(run.memo.edge_roles)).toEqual(["customer"]);
    expect(decode(run.memo.edge_request_id)).toBe("req-abc");
    expect(decode(run.searchAttributes[SEARCH_ATTRIBUTES.subject])).toBe(sub);
    expect(decode(run.searchAttributes[SEARCH_ATTRIBUTES.requestId])).toBe("req-abc");
    expect(run.identity).toBe(`edge:${sub}`);
  });

  it("continues a W3C traceparent under the edge's own span, with the request's baggage, in _tracer-data", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const res = await start(order(), { traceparent, tracestate: "vendor=1", "X-Request-Id": "req-trace", baggage: "edge_subject=mallory" });
    const answered = res.headers.get("traceresponse")!;
    const r = await read(res);
    const run = up.temporal.runs.get(r.body.workflow_id)!;
    const data = decode(run.header["_tracer-data"]) as Record<string, string>;
    // The workflow runs under the edge's span (the one the answer names), in the caller's trace.
    expect(answered).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(answered).not.toContain("00f067aa0ba902b7");
    expect(data.traceparent).toBe(answered);
    expect(data.tracestate).toBe("vendor=1");
    // The request id and the authenticated caller, never the caller's own baggage.
    const sub = decode(run.memo.edge_subject) as string;
    expect(data.baggage).toBe(`edge_request_id=req-trace,edge_subject=${encodeURIComponent(sub)}`);
  });

  it("logs the request id with the workflow id and the trace id, and never the token", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const logged = vi.spyOn(console, "log");
    try {
      const res = await start(order(), { traceparent, "X-Request-Id": "req-logged" });
      const r = await read(res);
      const lines = logged.mock.calls.map((c) => String(c[0]));
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.request_id === "req-logged");
      expect(line).toMatchObject({
        workflow_id: r.body.workflow_id,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        span_id: res.headers.get("traceresponse")!.split("-")[2],
        status: 202,
      });
      expect(lines.join("\n")).not.toContain(token);
    } finally {
      logged.mockRestore();
    }
  });

  it("starts a trace when the caller sent none or an invalid traceparent", async () => {
    const sent: Record<string, string>[] = [{}, { traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" }];
    for (const headers of sent) {
      const res = await start(order(), headers);
      const answered = res.headers.get("traceresponse")!;
      const r = await read(res);
      expect(answered).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(answered).not.toContain("00000000000000000000000000000000");
      const data = decode(up.temporal.runs.get(r.body.workflow_id)!.header["_tracer-data"]) as Record<string, string>;
      expect(data.traceparent).toBe(answered);
    }
  });

  it("sends the Temporal API key as a bearer token and never the caller's token", async () => {
    await start(order());
    const sent = up.temporal.startCalls()[0].headers;
    expect(sent.get("Authorization")).toBe("Bearer test-temporal-api-key");
    expect(sent.get("Accept")).toBe("application/json+no-payload-shorthand");
  });

  it("answers 404 for a workflow not in the manifest, without calling Temporal", async () => {
    const r = await read(await call("/v1/workflows/refund", { token, body: {} }));
    expect(r.status).toBe(404);
    expect(r.body.type).toBe("urn:edgeflow:problem:not-found");
    expect(up.temporal.calls).toHaveLength(0);
  });
});

describe("input validation", () => {
  it("lists every offending field by path, before anything reaches Temporal", async () => {
    const r = await read(
      await start({
        order_id: "bad id!",
        customer_email: "not-an-email",
        items: [{ sku: "A", quantity: 0, unit_price_cents: 1.5, colour: "red" }],
        amount_cents: 0,
        currency: "eur",
        coupon: "FREE",
      }),
    );
    expect(r.status).toBe(422);
    expect(r.headers.get("Content-Type")).toBe("application/problem+json");
    expect(r.body.type).toBe("urn:edgeflow:problem:validation-failed");
    const paths = r.body.errors.map((e: { path: string }) => e.path).sort();
    expect(paths).toEqual(
      [
        "$.amount_cents",
        "$.coupon",
        "$.currency",
        "$.customer_email",
        "$.items[0].colour",
        "$.items[0].quantity",
        "$.items[0].unit_price_cents",
        "$.order_id",
      ].sort(),
    );
    const quantity = r.body.errors.find((e: { path: string }) => e.path === "$.items[0].quantity");
    expect(quantity).toMatchObject({ pointer: "/items/0/quantity" });
    expect(quantity.detail).toMatch(/less than 1/);
    expect(up.temporal.calls).toHaveLength(0);
  });

  const raw = (text: string) => call("/v1/workflows/order", { token, raw: text, headers: { "Content-Type": "application/json" } });
  const orderText = (amount: string, extra = "") =>
    `{"order_id":"o-${crypto.randomUUID().slice(0, 8)}","customer_email":"a@example.com","items":[{"sku":"S","quantity":1,"unit_price_cents":${amount}}],"amount_cents":${amount},"currency":"EUR"${extra}}`;

  it("refuses integers past 2^53 - 1 instead of rounding them (JavaScript would store 9007199254740993 as …992)", async () => {
    for (const big of ["9007199254740993", "18446744073709551616", "1e20", "9007199254740992"]) {
      const r = await read(await raw(orderText(big)));
      expect(r.status, big).toBe(422);
      expect(r.body.errors.map((e: { path: string }) => e.path).sort(), big).toEqual(["$.amount_cents", "$.items[0].unit_price_cents"]);
      expect(r.body.errors[0].detail, big).toMatch(/is greater than 9007199254740991/);
    }
    expect((await raw(orderText("9007199254740991"))).status).toBe(202);
    // An integral float is the integer, as the worker reads it.
    expect((await raw(orderText("2500.0"))).status).toBe(202);
    // A number no side can hold is not JSON the edge accepts.
    expect((await read(await raw(orderText("1e400")))).body.type).toBe("urn:edgeflow:problem:malformed-json");
    expect(up.temporal.startCalls()).toHaveLength(2);
  });

  it("refuses strings and keys that are not well-formed Unicode (a lone surrogate), at their paths", async () => {
    const r = await read(await raw(orderText("10", ',"customer_name":"\\ud800x","\\udfff":1')));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([
      { path: "$.customer_name", pointer: "/customer_name", detail: "is not well-formed Unicode (a lone surrogate)" },
      { path: '$["\ufffd"]', pointer: "/\ufffd", detail: "the key is not well-formed Unicode (a lone surrogate)" },
    ]);
    // A proper surrogate pair is fine.
    expect((await raw(orderText("10", ',"customer_name":"\\ud83d\\ude00"'))).status).toBe(202);
    expect(up.temporal.startCalls()).toHaveLength(1);
  });

  it("refuses an email the worker refuses (a@localhost: one DNS label)", async () => {
    const r = await read(await start(order({ customer_email: "a@localhost" })));
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path)).toEqual(["$.customer_email"]);
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("refuses a total that is not the sum of the lines, once the schema holds", async () => {
    const r = await read(await start(order({ amount_cents: 2501 })));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([{ path: "$.amount_cents", pointer: "/amount_cents", detail: "2501 does not equal the lines' total 2500" }]);
    const overflow = await read(await start(order({ items: Array.from({ length: 3 }, () => ({ sku: "S", quantity: 1000, unit_price_cents: 9007199254740991 })), amount_cents: 1 })));
    expect(overflow.body.errors).toEqual([{ path: "$.items", pointer: "/items", detail: "the lines' total overflows" }]);
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("names missing required fields", async () => {
    const r = await read(await start({ order_id: "o1" }));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual(
      expect.arrayContaining([
        { path: "$.customer_email", pointer: "/customer_email", detail: "is required" },
        { path: "$.items", pointer: "/items", detail: "is required" },
      ]),
    );
  });

  it("enforces array bounds (no items, more than 100 items)", async () => {
    const none = await read(await start(order({ items: [], amount_cents: 2500 })));
    expect(none.status).toBe(422);
    expect(none.body.errors).toEqual([expect.objectContaining({ path: "$.items" })]);
    const many = Array.from({ length: 101 }, (_, i) => ({ sku: `S${i}`, quantity: 1, unit_price_cents: 1 }));
    // 101 items exceed the tests' 4 KiB body cap, so this deployment allows larger bodies.
    const r = await read(await callWith({ MAX_BODY_BYTES: "65536" }, "/v1/workflows/order", { token, body: order({ items: many }) }));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([expect.objectContaining({ path: "$.items" })]);
  });
});

describe("Idempotency-Key", () => {
  it("maps a repeated key to the same run and never starts a second one", async () => {
    const input = order();
    const first = await read(await start(input, { "Idempotency-Key": "key-1" }));
    const second = await read(await start(input, { "Idempotency-Key": "key-1" }));
    expect(first.status).toBe(202);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();
    // Still open: Temporal matched the request id (started: false), so the answer says it is a replay.
    expect(second.status).toBe(202);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body.workflow_id).toBe(first.body.workflow_id);
    expect(second.body.run_id).toBe(first.body.run_id);
    expect(up.temporal.runs.size).toBe(1);
  });

  it("returns the existing run when Temporal answers 409 (already started)", async () => {
    const input = order();
    const first = await read(await start(input, { "Idempotency-Key": "key-2" }));
    // A different Temporal request id (as after an edge redeploy) makes Temporal answer 409.
    up.temporal.runs.get(first.body.workflow_id)!.requestId = "some-other-request";
    const again = await read(await start(input, { "Idempotency-Key": "key-2" }));
    expect(again.status).toBe(202);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.body.run_id).toBe(first.body.run_id);
    expect(up.temporal.runs.size).toBe(1);
  });

  it("answers a replay of a finished run with 200 and its result", async () => {
    const input = order();
    const first = await read(await start(input, { "Idempotency-Key": "key-3" }));
    up.temporal.complete(first.body.workflow_id, { charged_cents: 2500 });
    up.temporal.runs.get(first.body.workflow_id)!.requestId = "other";
    const again = await read(await start(input, { "Idempotency-Key": "key-3" }));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ workflow_id: first.body.workflow_id, status: "completed", result: { charged_cents: 2500 } });
  });

  it("answers 200 with the result when Temporal deduplicates the request onto a finished run", async () => {
    const input = order();
    const first = await read(await start(input, { "Idempotency-Key": "key-5" }));
    up.temporal.complete(first.body.workflow_id, { charged_cents: 1 });
    const again = await read(await start(input, { "Idempotency-Key": "key-5" }));
    expect(again.status).toBe(200);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.body).toMatchObject({ run_id: first.body.run_id, status: "completed", result: { charged_cents: 1 } });
    expect(up.temporal.runs.size).toBe(1);
  });

  it("answers 409 pointing at the existing run when the order id is reused with another input", async () => {
    const input = order();
    const first = await read(await start(input, { "Idempotency-Key": "key-4" }));
    up.temporal.runs.get(first.body.workflow_id)!.requestId = "other";
    const clash = await read(await start({ ...input, currency: "USD" }, { "Idempotency-Key": "key-4" }));
    expect(clash.status).toBe(409);
    expect(clash.body.type).toBe("urn:edgeflow:problem:already-started");
    expect(clash.body.detail).toBe(`order order_id ${input.order_id} already exists with a different input`);
    expect(clash.headers.get("Location")).toBe(`/v1/runs/${first.body.workflow_id}`);
    expect(clash.body.workflow_id).toBe(first.body.workflow_id);
    expect(up.temporal.runs.size).toBe(1);
  });

  it("replays the same order sent again without a key; another caller's order with that id is its own run", async () => {
    const input = order();
    const first = await read(await start(input));
    const again = await read(await start(input));
    expect(again.status).toBe(202);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.body.run_id).toBe(first.body.run_id);
    // Another customer cannot take, block or probe this order id: the same id starts their own run.
    const other = await up.issuer.mint({ claims: { sub: "someone-else", roles: ["customer"] } });
    const stranger = await read(await start({ ...input, currency: "USD" }, {}, other));
    expect(stranger.status).toBe(202);
    expect(stranger.headers.get("Idempotent-Replayed")).toBeNull();
    expect(stranger.body.workflow_id).not.toBe(first.body.workflow_id);
    expect(stranger.body.workflow_id.endsWith(`-${input.order_id}`)).toBe(true);
    expect(up.temporal.runs.size).toBe(2);
    // And neither may read the other's.
    const peek = await read(await call(`/v1/runs/${first.body.workflow_id}`, { token: other }));
    expect(peek.status).toBe(403);
  });

  it("with LEGACY_RUN_IDS, meets the caller's run under the unscoped id of an earlier release instead of starting a second", async () => {
    const input = order();
    const sub = JSON.parse(atob(token.split(".")[1])).sub as string;
    const legacy = up.temporal.seed({
      workflowId: `order-${input.order_id}`,
      type: "order",
      memo: { edge_subject: encodePayload(sub), edge_input_sha256: encodePayload(await canonicalHash(input)) },
    });
    // Another caller's run under the id of the next order: not theirs, so ignored.
    const theirs = order();
    up.temporal.seed({ workflowId: `order-${theirs.order_id}`, type: "order", memo: { edge_subject: encodePayload("someone-else") } });

    const LEGACY = { LEGACY_RUN_IDS: "true" };
    const again = await read(await callWith(LEGACY, "/v1/workflows/order", { token, body: input }));
    expect(again.status).toBe(202);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.body.workflow_id).toBe(legacy.workflowId);
    expect(again.body.run_id).toBe(legacy.runId);
    const changed = await read(await callWith(LEGACY, "/v1/workflows/order", { token, body: { ...input, currency: "USD" } }));
    expect(changed.status).toBe(409);

    const mine = await read(await callWith(LEGACY, "/v1/workflows/order", { token, body: theirs }));
    expect(mine.status).toBe(202);
    expect(mine.body.workflow_id).toMatch(new RegExp(`^order-[0-9a-f]{20}-${theirs.order_id}$`));
    // Without the setting, the scoped id is all there is.
    const plain = await read(await start(input));
    expect(plain.body.workflow_id).not.toBe(legacy.workflowId);
    expect(plain.headers.get("Idempotent-Replayed")).toBeNull();
  });

  it("scopes by issuer too: the same subject from another identity provider is another caller", async () => {
    const base = { subject: "alice", email: null, roles: [], via: "oidc" as const };
    const a = await nameCaller({ ...base, issuer: "https://a.example" }, undefined);
    const b = await nameCaller({ ...base, issuer: "https://b.example" }, undefined);
    expect(a.scope).not.toBe(b.scope);
    // Keyed: the scope and principal depend on the key, so nobody without it can compute them.
    const key = new Uint8Array(32).fill(7);
    const k1 = await nameCaller({ ...base, issuer: "https://a.example" }, key);
    const k2 = await nameCaller({ ...base, issuer: "https://a.example" }, new Uint8Array(32).fill(8));
    expect(k1.scope).not.toBe(a.scope);
    expect(k1.scope).not.toBe(k2.scope);
    expect(k1.principal).toMatch(/^h:[0-9a-f]{32}$/);
    expect(a.principal).toBe("alice");
  });

  it("gives each request without a key its own run", async () => {
    const a = await read(await start(order()));
    const b = await read(await start(order()));
    expect(a.body.workflow_id).not.toBe(b.body.workflow_id);
    expect(up.temporal.runs.size).toBe(2);
  });

  it("refuses an unusable key with 400", async () => {
    const r = await read(await start(order(), { "Idempotency-Key": "x".repeat(300) }));
    expect(r.status).toBe(400);
    expect(r.body.type).toBe("urn:edgeflow:problem:invalid-request");
  });
});

describe("Prefer: wait", () => {
  it("never answers completed on a completion event alone: Temporal still reports the run open", async () => {
    // A correctly signed event claiming an outcome (a buggy or compromised sender) for a run that is still running.
    up.temporal.onStart = (run) => setTimeout(() => void postHook(completion(run.workflowId, run.runId, { forged: true })), 100);
    const r = await read(await start(order(), { Prefer: "wait=1" }));
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: "running", result: null });
  });

  it("answers 200 once Temporal has closed the run, with Temporal's result rather than the event's", async () => {
    up.temporal.onStart = (run) => {
      setTimeout(() => void postHook(completion(run.workflowId, run.runId, { claimed: "by the event" })), 100);
      setTimeout(() => up.temporal.complete(run.workflowId, { charged_cents: 2500, receipt: "r-1" }), 300);
    };
    const t0 = Date.now();
    const r = await read(await start(order(), { Prefer: "wait=5" }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "completed", result: { charged_cents: 2500, receipt: "r-1" }, error: null });
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  const endings = [
    { how: "failed", end: (id: string) => up.temporal.fail(id, "payment declined"), error: { message: "payment declined" } },
    { how: "terminated", end: (id: string) => up.temporal.terminate(id, "stopped by an operator"), error: { message: "stopped by an operator" } },
    { how: "canceled", end: (id: string) => up.temporal.cancel(id), error: { message: "workflow canceled" } },
    { how: "timed_out", end: (id: string) => up.temporal.timeOut(id), error: { message: "workflow timed out" } },
  ];
  for (const e of endings) {
    it(`answers 200 when the run ends ${e.how}, as soon as it does`, async () => {
      up.temporal.onStart = (run) => setTimeout(() => e.end(run.workflowId), 200);
      const t0 = Date.now();
      const r = await read(await start(order(), { Prefer: "wait=5" }));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: e.how, result: null, error: e.error });
      expect(Date.now() - t0).toBeLessThan(2500);
    });
  }

  it("answers 202 with Location when the run is still going after N seconds", async () => {
    const t0 = Date.now();
    const r = await read(await start(order(), { Prefer: "wait=1" }));
    expect(r.status).toBe(202);
    expect(r.headers.get("Location")).toBe(`/v1/runs/${r.body.workflow_id}`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
  });

  it("caps N at MAX_WAIT_SECONDS", async () => {
    const t0 = Date.now();
    const r = await read(await callWith({ MAX_WAIT_SECONDS: "1" }, "/v1/workflows/order", { token, body: order(), headers: { Prefer: "respond-async, wait=86400" } }));
    expect(r.status).toBe(202);
    expect(r.headers.get("Preference-Applied")).toBe("wait=1");
    expect(Date.now() - t0).toBeLessThan(4500);
  });

  it("long-polls Temporal's close event when no completion callback is attached", async () => {
    up.temporal.onStart = (run) => setTimeout(() => up.temporal.complete(run.workflowId, { via: "long-poll" }), 200);
    const t0 = Date.now();
    const r = await read(await callWith({ WEBHOOK_SECRETS: "" }, "/v1/workflows/order", { token, body: order(), headers: { Prefer: "wait=5" } }));
    expect(r.status).toBe(200);
    expect(r.body.result).toEqual({ via: "long-poll" });
    expect(Date.now() - t0).toBeLessThan(4500);
    expect(up.temporal.calls.some((c) => c.path.includes("waitNewEvent=true"))).toBe(true);
  });
});

describe("any workflow in the manifest", () => {
  it("starts a workflow the edge has never heard of by name, validated by its own schema", async () => {
    const catalog = Catalog.fromManifest(
      {
        version: 1,
        workflows: [{ name: "refund", task_queue: "payments", input: "refund.json", signals: [], queries: [] }],
        activities: [],
      },
      {
        "refund.json": {
          $schema: "https://json-schema.org/draft/2020-12/schema",
          type: "object",
          properties: { refund_id: { type: "string" }, cents: { type: "integer", minimum: 1 } },
          required: ["refund_id", "cents"],
          additionalProperties: false,
        },
      },
    );
    const deps = { ...defaultDeps(), catalog };
    const send = async (body: unknown) => read(await callWith({}, "/v1/workflows/refund", { token, body }, deps));
    const bad = await send({ refund_id: "r1", cents: 0 });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].path).toBe("$.cents");
    const ok = await send({ refund_id: "r1", cents: 10 });
    expect(ok.status).toBe(202);
    const run = up.temporal.runs.get(ok.body.workflow_id)!;
    expect(run.type).toBe("refund");
    expect(run.taskQueue).toBe("payments");
  });
});
