// The codec server (/v1/codec/encode, /v1/codec/decode): Temporal's protocol answered with the
// edge's keys, for a token whose roles grant `codec`, CORS only for the configured UI origins,
// and without a token only for a configured loopback origin (the dev UI). Each refusal here.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import vectorsText from "../../tests/vectors/payload-encryption.json?raw";
import { b64decode, decodePayload, encodePayload, type Payload } from "../src/temporal";
import { installUpstreams, type Upstreams } from "./fakes";
import { callWith, read, type CallOptions } from "./helpers";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(0x5a)));
const vectors = (JSON.parse(vectorsText) as { vectors: { key_id: string; key: string; plaintext: Payload; encoded: Payload }[] }).vectors;
const UI = "https://temporal-ui.example.com";
const DEV_UI = "http://127.0.0.1:8233";
const ENC = {
  ENCRYPTION_KEYS: JSON.stringify({ k1: KEY, [vectors[0].key_id]: vectors[0].key }),
  ENCRYPTION_ACTIVE_KEY_ID: "k1",
  CALLER_HASH_KEY: btoa("h".repeat(32)),
  CODEC_CORS_ORIGINS: UI,
  // Roles as the unit tests' default, plus one that may only use the codec server.
  ROLE_GRANTS: JSON.stringify({ customer: ["start:*"], approver: ["start:*", "signal:*", "read:*"], admin: ["*"], support: ["codec"] }),
};
const DEV = { ...ENC, CODEC_ANONYMOUS_ORIGINS: DEV_UI };
const EMAIL = "alice@example.com";
const text = (b64: string | undefined) => new TextDecoder().decode(b64decode(b64 ?? ""));

let up: Upstreams;
let support: string;

beforeEach(async () => {
  up = await installUpstreams();
  support = await up.issuer.mint({ claims: { sub: "sam", roles: ["support"] } });
});

afterEach(() => vi.restoreAllMocks());

function codec(op: "encode" | "decode", payloads: unknown[], o: CallOptions & { vars?: Record<string, string> } = {}) {
  return callWith(o.vars ?? ENC, `/v1/codec/${op}`, { token: support, body: { payloads }, ...o, headers: { "X-Namespace": "default", ...o.headers } });
}

describe("the codec server", () => {
  it("encodes with the active key and decodes it back, for a token whose role grants `codec`", async () => {
    const plain = encodePayload({ order_id: "o-1", customer_email: EMAIL });
    const enc = await read(await codec("encode", [plain]));
    expect(enc.status).toBe(200);
    expect(enc.headers.get("Content-Type")).toBe("application/json");
    const [sealed] = enc.body.payloads as Payload[];
    expect(text(sealed.metadata.encoding)).toBe("binary/encrypted");
    expect(text(sealed.metadata["encryption-key-id"])).toBe("k1");
    expect(text(sealed.data)).not.toContain(EMAIL);

    const dec = await read(await codec("decode", [sealed]));
    expect(dec.status).toBe(200);
    expect(dec.body.payloads).toHaveLength(1);
    expect(decodePayload(dec.body.payloads[0])).toEqual({ order_id: "o-1", customer_email: EMAIL });
  });

  it("decodes a committed vector of the Python sample and passes plaintext through, in order", async () => {
    const plain = encodePayload({ note: "not encrypted" });
    const r = await read(await codec("decode", [vectors[0].encoded, plain]));
    expect(r.status).toBe(200);
    expect(r.body.payloads[0]).toEqual({ metadata: vectors[0].plaintext.metadata, data: vectors[0].plaintext.data ?? "" });
    expect(r.body.payloads[1]).toEqual(plain);
  });

  it("lets `admin` (`*`) use it, and no default role else", async () => {
    const admin = await up.issuer.mint({ claims: { roles: ["admin"] } });
    expect((await codec("decode", [], { token: admin })).status).toBe(200);
    for (const role of ["customer", "approver"]) {
      const r = await read(await callWith({ ...ENC, ROLE_GRANTS: "" }, "/v1/codec/decode", { token: await up.issuer.mint({ claims: { roles: [role] } }), body: { payloads: [] } }));
      expect(r.status, role).toBe(403);
    }
  });

  it("refuses a request without a token (401)", async () => {
    const r = await read(await codec("decode", [], { token: undefined }));
    expect(r.status).toBe(401);
    expect(r.body.code).toBe("missing_credentials");
  });

  it("refuses a bad token (401)", async () => {
    const r = await read(await codec("decode", [], { token: await up.issuer.mint({ key: "stranger", claims: { roles: ["support"] } }) }));
    expect(r.status).toBe(401);
    expect(r.body.code).toBe("invalid_signature");
    const expired = await read(await codec("decode", [], { token: await up.issuer.mint({ expiresIn: -3600, claims: { roles: ["support"] } }) }));
    expect(expired.status).toBe(401);
  });

  it("refuses a good token without the role (403)", async () => {
    const r = await read(await codec("decode", [vectors[0].encoded], { token: await up.issuer.mint({ claims: { roles: ["approver"] } }) }));
    expect(r.status).toBe(403);
    expect(r.body.type).toBe("urn:edgeflow:problem:forbidden");
    expect(JSON.stringify(r.body)).not.toContain(EMAIL.split("@")[0]);
  });

  it("refuses another namespace (400 wrong_namespace) and serves without X-Namespace", async () => {
    const r = await read(await codec("decode", [], { headers: { "X-Namespace": "other" } }));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe("wrong_namespace");
    const none = await callWith(ENC, "/v1/codec/decode", { token: support, body: { payloads: [] } });
    expect(none.status).toBe(200);
  });

  it("is off (404) while the edge holds no keys, whoever asks", async () => {
    for (const method of ["POST", "OPTIONS"]) {
      const r = await read(await callWith({ CODEC_CORS_ORIGINS: UI }, "/v1/codec/decode", { method, token: support, body: method === "POST" ? { payloads: [] } : undefined, headers: { Origin: UI } }));
      expect(r.status, method).toBe(404);
      expect(r.headers.get("Access-Control-Allow-Origin"), method).toBeNull();
    }
  });

  it("refuses a body that is not payloads (400, naming the fields)", async () => {
    const r = await read(await codec("decode", [{ metadata: { encoding: "!!" }, data: 5 }, "x"]));
    expect(r.status).toBe(400);
    expect(r.body.errors.map((e: { path: string }) => e.path)).toEqual(["$.payloads[0].metadata.encoding", "$.payloads[0].data", "$.payloads[1]"]);
    expect((await read(await codec("decode", [], { body: { nope: [] } }))).status).toBe(400);
  });

  it("answers a payload under a key it does not hold with 400 payload_undecryptable naming the key id", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const foreign = { ...vectors[0].encoded, metadata: { ...vectors[0].encoded.metadata, "encryption-key-id": btoa("k-gone") } };
    const r = await read(await codec("decode", [encodePayload(1), foreign]));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe("payload_undecryptable");
    expect(r.body.detail).toMatch(/^\$\.payloads\[1\]: .*`k-gone`/);
  });
});

describe("CORS", () => {
  it("answers the UI origin's preflight with its origin, credentials, methods and headers", async () => {
    const r = await callWith(ENC, "/v1/codec/decode", { method: "OPTIONS", headers: { Origin: UI, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,x-namespace" } });
    expect(r.status).toBe(204);
    expect(r.headers.get("Access-Control-Allow-Origin")).toBe(UI);
    expect(r.headers.get("Access-Control-Allow-Credentials")).toBe("true");
    expect(r.headers.get("Access-Control-Allow-Methods")).toBe("POST, OPTIONS");
    expect(r.headers.get("Access-Control-Allow-Headers")).toBe("Authorization, Content-Type, X-Namespace");
    expect(r.headers.get("Vary")).toBe("Origin");
  });

  it("puts the CORS headers on the UI origin's answers, refusals included (so the UI can read them)", async () => {
    const ok = await codec("decode", [], { headers: { Origin: UI } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe(UI);
    expect(ok.headers.get("Access-Control-Allow-Credentials")).toBe("true");
    const refused = await codec("decode", [], { token: undefined, headers: { Origin: UI } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("Access-Control-Allow-Origin")).toBe(UI);
  });

  it("refuses any other origin with 403 and no CORS headers, preflight or not, even with a good token", async () => {
    for (const origin of ["https://evil.example.com", `${UI}:8443`, "http://temporal-ui.example.com", "null"]) {
      for (const method of ["OPTIONS", "POST"]) {
        const r = await codec("decode", [], { method, body: method === "POST" ? { payloads: [] } : undefined, headers: { Origin: origin } });
        expect(r.status, `${method} ${origin}`).toBe(403);
        for (const h of r.headers.keys()) expect(h.startsWith("access-control-"), `${method} ${origin}: ${h}`).toBe(false);
      }
    }
  });

  it("answers no origin at all while CODEC_CORS_ORIGINS is empty (the default)", async () => {
    const r = await codec("decode", [], { vars: { ...ENC, CODEC_CORS_ORIGINS: "" }, headers: { Origin: UI } });
    expect(r.status).toBe(403);
    expect(r.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("the dev UI's anonymous origin (CODEC_ANONYMOUS_ORIGINS)", () => {
  it("decodes without a token for exactly that origin", async () => {
    const r = await read(await codec("decode", [vectors[0].encoded], { vars: DEV, token: undefined, headers: { Origin: DEV_UI } }));
    expect(r.status).toBe(200);
    expect(r.body.payloads[0].data).toBe(vectors[0].plaintext.data);
    expect(r.headers.get("Access-Control-Allow-Origin")).toBe(DEV_UI);
    const preflight = await callWith(DEV, "/v1/codec/decode", { method: "OPTIONS", headers: { Origin: DEV_UI } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe(DEV_UI);
  });

  it("still wants a token from any other origin, from no origin, and when the setting is empty", async () => {
    expect((await codec("decode", [], { vars: DEV, token: undefined, headers: { Origin: "http://127.0.0.1:8234" } })).status).toBe(403);
    expect((await codec("decode", [], { vars: DEV, token: undefined, headers: { Origin: "http://localhost:8233" } })).status).toBe(403);
    expect((await codec("decode", [], { vars: DEV, token: undefined })).status).toBe(401);
    expect((await codec("decode", [], { vars: DEV, token: undefined, headers: { Origin: UI } })).status).toBe(401);
    expect((await codec("decode", [], { vars: ENC, token: undefined, headers: { Origin: DEV_UI } })).status).toBe(403);
  });

  async function refusedAtLoad(vars: Record<string, string>, logged: RegExp) {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const r = await read(await callWith({ ...ENC, ...vars }, "/healthz"));
    expect(r.status).toBe(500);
    expect(r.body.type).toBe("urn:edgeflow:problem:misconfigured");
    const reasons = errors.mock.calls.flatMap((c) => (JSON.parse(String(c[0])).errors ?? []) as string[]);
    expect(reasons.join("\n")).toMatch(logged);
  }

  it("refuses a non-loopback anonymous origin at config load", async () => {
    await refusedAtLoad({ CODEC_ANONYMOUS_ORIGINS: "https://temporal-ui.example.org" }, /CODEC_ANONYMOUS_ORIGINS: https:\/\/temporal-ui\.example\.org is not a loopback origin/);
  });

  it("refuses an anonymous origin in production, and an origin with a path or `*`", async () => {
    await refusedAtLoad({ ENVIRONMENT: "production", CODEC_ANONYMOUS_ORIGINS: "http://127.0.0.1:9233" }, /CODEC_ANONYMOUS_ORIGINS: refused when ENVIRONMENT=production/);
    await refusedAtLoad({ CODEC_CORS_ORIGINS: "*" }, /CODEC_CORS_ORIGINS: "\*" is not an origin/);
    await refusedAtLoad({ CODEC_CORS_ORIGINS: "https://ui.example.com/path" }, /CODEC_CORS_ORIGINS: "https:\/\/ui\.example\.com\/path" is not an origin/);
  });

  it("refuses an unknown permission next to `codec` in ROLE_GRANTS", async () => {
    await refusedAtLoad({ ROLE_GRANTS: JSON.stringify({ support: ["codec", "decode"] }) }, /ROLE_GRANTS\.support: "decode" is not start:W, read:W, cancel:W, signal:W\.S, codec or \*/);
  });
});
