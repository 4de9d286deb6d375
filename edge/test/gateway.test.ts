// The gateway transport: the same client and paths, but every call to Temporal
// carries a fresh ES256 token for the caller instead of a Temporal API key, and
// the edge refuses to hold a Temporal key at all in that mode.
import { decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { installUpstreams, type Upstreams } from "./fakes";
import { callWith, order, read } from "./helpers";
import { bodyHash } from "../src/activities/token";

afterEach(() => vi.restoreAllMocks());

let publicKey: CryptoKey;
let vars: Record<string, string>;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  publicKey = pair.publicKey as CryptoKey;
  const jwk = { ...(await exportJWK(pair.privateKey)), kid: "edge-7" };
  vars = {
    TEMPORAL_TRANSPORT: "gateway",
    TEMPORAL_API_KEY: "",
    GATEWAY_SIGNING_KEY: JSON.stringify(jwk),
    GATEWAY_AUDIENCE: "gw-test",
    GATEWAY_ISSUER: "edge-test",
    GATEWAY_TOKEN_TTL_SECONDS: "20",
  };
});

async function startThroughGateway(up: Upstreams, requestId: string) {
  const token = await up.issuer.mint({ claims: { sub: "alice", roles: ["customer"] } });
  return read(await callWith(vars, "/v1/workflows/order", { token, body: order(), headers: { "X-Request-Id": requestId } }));
}

describe("gateway transport", () => {
  it("signs one short-lived token per call, for the caller and the request, and sends no API key", async () => {
    const up = await installUpstreams();
    const r = await startThroughGateway(up, "req-gw-1");
    expect(r.status).toBe(202);
    const sent = up.temporal.startCalls()[0].headers.get("Authorization") ?? "";
    expect(sent).toMatch(/^Bearer /);
    const token = sent.slice("Bearer ".length);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", kid: "edge-7" });
    const { payload } = await jwtVerify(token, publicKey, { audience: "gw-test", issuer: "edge-test", algorithms: ["ES256"] });
    expect(payload.sub).toBe("alice");
    expect(payload.rid).toBe("req-gw-1");
    expect(payload.exp! - payload.iat!).toBe(20);
    expect(typeof payload.jti).toBe("string");
    // Bound to this call: the gateway refuses it for any other method, path or body.
    const call = up.temporal.startCalls()[0];
    expect(payload).toMatchObject({ htm: "POST", htu: call.path, bsh: await bodyHash(JSON.stringify(call.body)) });

    // A call without a body (describe) hashes the empty body.
    await read(await callWith(vars, `/v1/runs/${encodeURIComponent(r.body.workflow_id)}`, { token: await up.issuer.mint({ claims: { sub: "alice", roles: ["customer"] } }) }));
    const describe = up.temporal.calls.find((c) => c.method === "GET")!;
    const { payload: read2 } = await jwtVerify(describe.headers.get("Authorization")!.slice(7), publicKey, { audience: "gw-test", algorithms: ["ES256"] });
    expect(read2).toMatchObject({ htm: "GET", htu: describe.path, bsh: "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" });

    // Another call gets another token: ids are never reused.
    await startThroughGateway(up, "req-gw-2");
    const tokens = up.temporal.startCalls().map((c) => c.headers.get("Authorization"));
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it("refuses to hold a Temporal API key, or to run without a usable signing key", async () => {
    await installUpstreams();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const bads: Record<string, string>[] = [
      { TEMPORAL_API_KEY: "sk-live" },
      { GATEWAY_SIGNING_KEY: "" },
      { GATEWAY_SIGNING_KEY: JSON.stringify({ kty: "EC", crv: "P-256", x: "a", y: "b" }) },
      { GATEWAY_TOKEN_TTL_SECONDS: "3600" },
    ];
    for (const bad of bads) {
      const r = await read(await callWith({ ...vars, ...bad }, "/healthz"));
      expect(r.status).toBe(500);
    }
    const lines = errors.mock.calls.map((c) => String(c[0])).join("\n");
    expect(lines).toMatch(/TEMPORAL_API_KEY: must be empty with TEMPORAL_TRANSPORT=gateway/);
    expect(lines).toMatch(/GATEWAY_SIGNING_KEY: missing/);
    expect(lines).toMatch(/GATEWAY_SIGNING_KEY: has no private part/);
    expect(lines).toMatch(/GATEWAY_TOKEN_TTL_SECONDS/);
    expect(lines).not.toMatch(/"d":/);
  });
});
