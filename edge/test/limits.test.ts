// Body limits: size (declared and streamed), JSON nesting depth, media type and
// well-formedness are all checked before anything reaches Temporal.
import { beforeEach, describe, expect, it } from "vitest";
import { installUpstreams, type Upstreams } from "./fakes";
import { call, callWith, order, read } from "./helpers";

let up: Upstreams;
let token: string;
beforeEach(async () => {
  up = await installUpstreams();
  token = await up.issuer.mint();
});

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

describe("body limits", () => {
  it("refuses a body over MAX_BODY_BYTES with 413", async () => {
    const big = order({ order_id: "o1", customer_email: `${"a".repeat(5000)}@example.com` });
    const r = await read(await call("/v1/workflows/order", { token, body: big }));
    expect(r.status).toBe(413);
    expect(r.body.type).toBe("urn:edgeflow:problem:payload-too-large");
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("counts streamed bytes too, when no Content-Length is sent", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(1024));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    // Straight into the handler: the request has no Content-Length, only a stream to count.
    const res = await callWith({}, "/v1/workflows/order", { token, raw: body, headers: { "Content-Type": "application/json" } });
    const r = await read(res);
    expect(r.status).toBe(413);
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("accepts nesting up to MAX_JSON_DEPTH and refuses one level more", async () => {
    // MAX_JSON_DEPTH is 8 in tests; order() itself is 3 deep (object > items > item).
    const deep = await read(await call("/v1/workflows/order", { token, raw: nested(9), headers: { "Content-Type": "application/json" } }));
    expect(deep.status).toBe(400);
    expect(deep.body.type).toBe("urn:edgeflow:problem:json-too-deep");
    const ok = await read(await call("/v1/workflows/order", { token, raw: nested(8), headers: { "Content-Type": "application/json" } }));
    // Within the depth limit, the schema has its say.
    expect(ok.status).toBe(422);
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("ignores brackets inside strings when measuring depth", async () => {
    const r = await read(await call("/v1/workflows/order", { token, body: order({ order_id: "[[[[[[[[[[" }) }));
    expect(r.status).toBe(422);
    expect(r.body.errors.map((e: { path: string }) => e.path)).toEqual(["$.order_id"]);
  });

  it("refuses malformed JSON with 400", async () => {
    const r = await read(await call("/v1/workflows/order", { token, raw: '{"order_id": ', headers: { "Content-Type": "application/json" } }));
    expect(r.status).toBe(400);
    expect(r.body.type).toBe("urn:edgeflow:problem:malformed-json");
  });

  it("refuses a body that is not declared as JSON with 415", async () => {
    const r = await read(await call("/v1/workflows/order", { token, raw: JSON.stringify(order()), headers: { "Content-Type": "text/plain" } }));
    expect(r.status).toBe(415);
    expect(r.body.type).toBe("urn:edgeflow:problem:unsupported-media-type");
  });
});

describe("routing", () => {
  it("answers 404 problem for an unknown path and 405 with Allow for a wrong method", async () => {
    const missing = await read(await call("/v2/nothing"));
    expect(missing.status).toBe(404);
    expect(missing.body.type).toBe("urn:edgeflow:problem:not-found");
    const wrong = await read(await call("/v1/workflows/order", { method: "GET", token }));
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("Allow")).toBe("POST");
  });

  it("serves /healthz without credentials", async () => {
    const r = await read(await call("/healthz"));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: "ok" });
  });
});
