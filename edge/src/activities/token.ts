// The worker's per-request token on POST /v1/activities/{name} (docs/architecture.md,
// "Activities at the edge"): a compact ES256 JWS signed with the worker's P-256 key, checked
// against the public keys in the ACTIVITY_KEYS secret (a JWKS; two keys while rotating), and
// bound to the one request it was minted for: method (htm), path (htu), SHA-256 of the exact
// body (bsh), and the workflow id, activity id and attempt the headers name. A token lives at
// most 60 s; its `jti` is then claimed in the ActivityTokens Durable Object (tokens.ts), so it is
// accepted once. Every failure is a 401 with a stable code and nothing more.
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK, type JWTPayload } from "jose";
import { classify, unauthorized } from "../auth";

export interface ActivityKeySettings {
  /** The public keys (EC P-256, each with a `kid`), at most two. */
  keys: (JWK & { kid: string })[];
  keySet: ReturnType<typeof createLocalJWKSet>;
  /** `EDGE_ACTIVITY_AUDIENCE`; null: the origin of the request's URL (the worker's default). */
  audience: string | null;
  issuer: string;
}

/** What the edge reads from a verified token. */
export interface ActivityClaims {
  jti: string;
  /** Unix seconds. */
  exp: number;
  workflowId: string;
  activityId: string;
  attempt: number;
}

export const MAX_TOKEN_LIFETIME_SECONDS = 60;
export const MAX_ACTIVITY_KEYS = 2;
/** Clocks of the worker's hosts and Cloudflare's are NTP-synced; this covers the rest. */
export const CLOCK_TOLERANCE_SECONDS = 5;
const MAX_TOKEN_BYTES = 8 * 1024;
/** 128 random bits are 22 base64url characters. */
const JTI = /^[A-Za-z0-9_-]{22,128}$/;
const ATTEMPT = /^[1-9][0-9]{0,8}$/;

/**
 * `ACTIVITY_KEYS` (a JWKS: `{"keys":[…]}`), reporting what is wrong with it into `errors` by
 * position and kid, never a key's value; undefined when it is empty (the route is off).
 */
export function parseActivityKeys(raw: Record<string, unknown>, errors: string[]): ActivityKeySettings | undefined {
  const str = (k: string) => (typeof raw[k] === "string" ? (raw[k] as string).trim() : "");
  const text = str("ACTIVITY_KEYS");
  if (!text) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const list = parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(list)) {
    errors.push('ACTIVITY_KEYS: not a JWKS ({"keys":[<the worker\'s public EC P-256 JWK, with kid>]})');
    return undefined;
  }
  if (list.length < 1 || list.length > MAX_ACTIVITY_KEYS) errors.push(`ACTIVITY_KEYS: ${list.length} keys, expected 1 or ${MAX_ACTIVITY_KEYS} (two while rotating)`);
  const keys: (JWK & { kid: string })[] = [];
  list.forEach((k: unknown, i: number) => {
    const key = (k && typeof k === "object" ? k : {}) as Record<string, unknown>;
    const at = `ACTIVITY_KEYS: key ${i + 1}${typeof key.kid === "string" ? ` (kid ${JSON.stringify(key.kid.slice(0, 64))})` : ""}`;
    if (key.kty !== "EC" || key.crv !== "P-256" || typeof key.x !== "string" || typeof key.y !== "string") errors.push(`${at}: not an EC P-256 public key (ES256)`);
    else if ("d" in key) errors.push(`${at}: holds a private key; give the edge only the public half`);
    else if (typeof key.kid !== "string" || !key.kid) errors.push(`${at}: has no kid (the worker's tokens name their key by kid)`);
    else if (key.alg !== undefined && key.alg !== "ES256") errors.push(`${at}: alg is ${JSON.stringify(key.alg)}, expected ES256`);
    else if (keys.some((o) => o.kid === key.kid)) errors.push(`${at}: the kid is used twice`);
    else keys.push({ kty: "EC", crv: "P-256", x: key.x, y: key.y, kid: key.kid, alg: "ES256", use: "sig" });
  });
  if (!("ACTIVITY_TOKENS" in raw) || !raw.ACTIVITY_TOKENS) errors.push("ACTIVITY_TOKENS: Durable Object binding missing (wrangler.jsonc; required with ACTIVITY_KEYS for replay refusal)");
  return { keys, keySet: createLocalJWKSet({ keys }), audience: str("EDGE_ACTIVITY_AUDIENCE") || null, issuer: str("ACTIVITY_ISSUER") || "edgeflow-worker" };
}

/** base64url without padding of SHA-256 over `bytes`: a token's `bsh`. */
export async function bodyHash(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Verifies the request's token and its binding to this request; throws a 401 problem otherwise. */
export async function verifyActivityRequest(request: Request, body: Uint8Array, s: ActivityKeySettings): Promise<ActivityClaims> {
  const url = new URL(request.url);
  const authorization = request.headers.get("Authorization");
  if (!authorization) throw unauthorized("missing_credentials");
  const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(authorization);
  if (!m) throw unauthorized("malformed_token");
  const token = m[1];
  if (token.length > MAX_TOKEN_BYTES) throw unauthorized("malformed_token");
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw unauthorized("malformed_token");
  }
  if (header.alg !== "ES256") throw unauthorized("unsupported_algorithm");
  if (header.typ !== "JWT" || typeof header.kid !== "string") throw unauthorized("malformed_token");
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, s.keySet, {
      issuer: s.issuer,
      audience: s.audience ?? url.origin,
      algorithms: ["ES256"],
      typ: "JWT",
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["iat", "exp", "jti", "htm", "htu", "bsh", "wid", "aid", "att"],
    }));
  } catch (e) {
    throw classify(e);
  }
  const { iat, exp, jti } = claims as { iat: number; exp: number; jti: unknown };
  if (iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) throw unauthorized("token_not_yet_valid");
  // Checked from the token itself: a worker minting longer tokens is refused, not trusted to be careful.
  if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS || exp <= iat) throw unauthorized("token_lifetime_too_long");
  if (typeof jti !== "string" || !JTI.test(jti)) throw unauthorized("malformed_token");

  const h = request.headers;
  const attempt = h.get("Edgeflow-Attempt") ?? "";
  const bound =
    claims.htm === request.method &&
    claims.htu === url.pathname + url.search &&
    claims.bsh === (await bodyHash(body)) &&
    typeof claims.wid === "string" &&
    claims.wid === h.get("Edgeflow-Workflow-Id") &&
    typeof claims.aid === "string" &&
    claims.aid === h.get("Edgeflow-Activity-Id") &&
    ATTEMPT.test(attempt) &&
    claims.att === Number(attempt) &&
    h.get("Idempotency-Key") === `${claims.wid}/${claims.aid}`;
  if (!bound) throw unauthorized("binding_mismatch");
  return { jti, exp, workflowId: claims.wid as string, activityId: claims.aid as string, attempt: claims.att as number };
}
