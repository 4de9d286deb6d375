// Temporal's codec-server protocol, so the Temporal UI and CLI can show what the payload codec
// (codec.ts) encrypted: `POST /v1/codec/encode` and `/v1/codec/decode` take and answer
// `{"payloads":[{"metadata":{k: base64},"data":"base64"}]}`, the namespace in `X-Namespace`.
// The same codec and keys as the rest of the edge; off (404) while the edge holds no keys.
//
// Who may call, checked in this order (docs/encryption.md, "Codec server"):
// 1. A browser's `Origin` must be one of CODEC_CORS_ORIGINS or CODEC_ANONYMOUS_ORIGINS, else 403
//    with no CORS headers; a request without `Origin` (the CLI) is not a CORS request.
// 2. A token, checked as every other route's (401), whose roles grant `codec` (403); except that
//    an origin in CODEC_ANONYMOUS_ORIGINS (loopback only, never in production: the dev UI, which
//    has no login) needs none.
// 3. `X-Namespace`, when sent, must be the edge's namespace (400): its keys are that namespace's.
import { canUseCodec } from "./auth";
import { CodecError, codecFor } from "./codec";
import type { Settings } from "./config";
import { fieldError, problem, type FieldError } from "./problem";
import type { Ctx } from "./routes";
import { readJson } from "./schemas";
import { identify } from "./scope";
import type { Payload } from "./temporal";

/** Temporal's payload limit is 2 MB by default; in base64 and JSON a batch of them is larger. */
export const MAX_CODEC_BODY_BYTES = 4 * 1024 * 1024;
const ALLOW_METHODS = "POST, OPTIONS";
const ALLOW_HEADERS = "Authorization, Content-Type, X-Namespace";

export async function codecEncode(c: Ctx): Promise<Response> {
  return run(c, (codec, p) => codec.encode(p));
}

export async function codecDecode(c: Ctx): Promise<Response> {
  return run(c, (codec, p) => codec.decode(p));
}

/** The browser's preflight: the CORS headers for an allowed origin (204), 403 without any for another. */
export async function codecPreflight(c: Ctx): Promise<Response> {
  settingsOrOff(c);
  if (!allowOrigin(c)) throw problem("forbidden", { detail: "This origin may not call the codec server (CODEC_CORS_ORIGINS)" });
  return new Response(null, {
    status: 204,
    headers: { "Access-Control-Allow-Methods": ALLOW_METHODS, "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": "600" },
  });
}

type Codec = Awaited<ReturnType<typeof codecFor>>;

async function run(c: Ctx, each: (codec: Codec, p: Payload) => Promise<Payload>): Promise<Response> {
  const encryption = settingsOrOff(c);
  const origin = c.request.headers.get("Origin");
  if (origin !== null && !allowOrigin(c)) throw problem("forbidden", { detail: "This origin may not call the codec server (CODEC_CORS_ORIGINS)" });
  const anonymous = origin !== null && c.settings.codecServer.anonymousOrigins.includes(origin);
  if (!anonymous) {
    if (!canUseCodec(await identify(c), c.settings)) throw problem("forbidden", { detail: "Your roles do not grant `codec`, which the codec server needs" });
  }
  const namespace = c.request.headers.get("X-Namespace");
  if (namespace !== null && namespace !== c.settings.temporal.namespace) {
    throw problem("invalid-request", {
      code: "wrong_namespace",
      detail: `X-Namespace is ${JSON.stringify(namespace.slice(0, 200))}, but this codec server holds the keys of namespace ${JSON.stringify(c.settings.temporal.namespace)} only`,
    });
  }
  const payloads = payloadsOf(await readJson(c.request, { maxBytes: MAX_CODEC_BODY_BYTES, maxDepth: c.settings.maxJsonDepth }));
  const codec = await codecFor(encryption);
  const out: Payload[] = [];
  for (const [i, p] of payloads.entries()) {
    try {
      out.push(await each(codec, p));
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      // Names the key id (never a key), so whoever reads it knows which key the edge lacks.
      console.error(JSON.stringify({ level: "error", msg: "codec server: payload not decrypted", request_id: c.requestId, key_id: e.keyId ?? null, error: e.message }));
      throw problem("invalid-request", { code: "payload_undecryptable", detail: `$.payloads[${i}]: ${e.message}` });
    }
  }
  return new Response(JSON.stringify({ payloads: out }), { status: 200, headers: { "Content-Type": "application/json" } });
}

/** The edge's keys, or 404: the codec server exists only where the edge encrypts. */
function settingsOrOff(c: Ctx): NonNullable<Settings["encryption"]> {
  if (!c.settings.encryption) throw problem("not-found", { detail: "The codec server is off: this edge holds no payload keys (ENCRYPTION_KEYS)" });
  // Answers differ by Origin from here on, so caches must key on it.
  c.responseHeaders = { Vary: "Origin" };
  return c.settings.encryption;
}

/** Is the request's Origin one the codec server answers? If so, its CORS headers go on every answer. */
function allowOrigin(c: Ctx): boolean {
  const origin = c.request.headers.get("Origin");
  const { corsOrigins, anonymousOrigins } = c.settings.codecServer;
  if (origin === null || !(corsOrigins.includes(origin) || anonymousOrigins.includes(origin))) return false;
  c.responseHeaders = { ...c.responseHeaders, "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true" };
  return true;
}

/** `{"payloads": [...]}` in Temporal's JSON form, each metadata value and data base64; 400 naming every bad field. */
function payloadsOf(body: unknown): Payload[] {
  const errors: FieldError[] = [];
  const isB64 = (v: unknown): boolean => {
    if (typeof v !== "string") return false;
    try {
      atob(v);
      return true;
    } catch {
      return false;
    }
  };
  const list = body && typeof body === "object" && !Array.isArray(body) ? (body as { payloads?: unknown }).payloads : undefined;
  if (!Array.isArray(list)) throw problem("invalid-request", { errors: [fieldError(["payloads"], "expected an array of payloads")] });
  list.forEach((p, i) => {
    if (!p || typeof p !== "object" || Array.isArray(p)) {
      errors.push(fieldError(["payloads", i], "expected an object with metadata and data"));
      return;
    }
    const { metadata, data } = p as { metadata?: unknown; data?: unknown };
    if (metadata !== undefined && (!metadata || typeof metadata !== "object" || Array.isArray(metadata))) {
      errors.push(fieldError(["payloads", i, "metadata"], "expected an object of base64 strings"));
    } else {
      for (const [k, v] of Object.entries((metadata as Record<string, unknown>) ?? {})) {
        if (!isB64(v)) errors.push(fieldError(["payloads", i, "metadata", k], "expected base64"));
      }
    }
    if (data !== undefined && !isB64(data)) errors.push(fieldError(["payloads", i, "data"], "expected base64"));
  });
  if (errors.length) throw problem("invalid-request", { errors });
  return (list as { metadata?: Record<string, string>; data?: string }[]).map((p) => ({ metadata: p.metadata ?? {}, ...(p.data !== undefined ? { data: p.data } : {}) }));
}
