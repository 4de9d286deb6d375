// Who is calling and what they may do. Identity comes from an OIDC bearer JWT
// (checked against the issuer's JWKS) or a Cloudflare Access JWT
// (`Cf-Access-Jwt-Assertion`, checked against the team's certs and the app's
// AUD), both verified with `jose` under an allowlist of asymmetric algorithms.
// Claims map to roles, roles to permissions. Failures answer 401 with one
// stable `code` and nothing more about why.
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import { CODEC_PERMISSION, type Settings } from "./config";
import { HttpProblem, problem } from "./problem";
import type { FetchFn } from "./temporal";

export interface Caller {
  /** The identity provider that vouched for the caller (OIDC issuer or Access team domain). */
  issuer: string;
  subject: string;
  email: string | null;
  roles: string[];
  via: "oidc" | "access";
}

/** Stable reasons a credential was refused (the `code` of a 401 problem). */
export type AuthCode =
  | "missing_credentials"
  | "malformed_token"
  | "unsupported_algorithm"
  | "invalid_signature"
  | "unknown_key"
  | "wrong_issuer"
  | "wrong_audience"
  | "token_expired"
  | "token_not_yet_valid"
  | "missing_subject"
  // Edge-activity tokens (activities/token.ts):
  | "token_lifetime_too_long"
  | "token_replayed"
  | "binding_mismatch";

const CLOCK_TOLERANCE_SECONDS = 30;
/** A token issued further ahead than this is refused: no clock is that far off, a forged or broken issuer is. */
const MAX_IAT_AHEAD_SECONDS = 60;
const MAX_TOKEN_BYTES = 16 * 1024;

type KeySet = ReturnType<typeof createRemoteJWKSet>;
const keySets = new Map<string, KeySet>();

/** One remote key set per URL per isolate: jose caches keys and refetches on an unknown `kid` (with a cooldown). */
function keySet(url: string, fetch: FetchFn): KeySet {
  let ks = keySets.get(url);
  if (!ks) {
    ks = createRemoteJWKSet(new URL(url), {
      timeoutDuration: 5000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: (u: string, init: RequestInit) => fetch(u, init),
    });
    keySets.set(url, ks);
  }
  return ks;
}

export function unauthorized(code: AuthCode): HttpProblem {
  return problem("unauthorized", {
    code,
    headers: { "WWW-Authenticate": code === "missing_credentials" ? 'Bearer realm="edgeflow"' : 'Bearer realm="edgeflow", error="invalid_token"' },
  });
}

export async function authenticate(request: Request, settings: Settings, fetch: FetchFn): Promise<Caller> {
  const authz = request.headers.get("Authorization");
  const accessJwt = request.headers.get("Cf-Access-Jwt-Assertion");
  if (authz !== null && settings.oidc) {
    const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(authz);
    if (!m) throw unauthorized("malformed_token");
    const o = settings.oidc;
    const claims = await verify(m[1], keySet(o.jwksUrl, fetch), { issuer: o.issuer, audience: o.audience, algorithms: o.algorithms });
    return toCaller(claims, settings, "oidc");
  }
  if (accessJwt !== null && settings.access) {
    const a = settings.access;
    const claims = await verify(accessJwt, keySet(a.certsUrl, fetch), { issuer: a.issuer, audience: a.audience, algorithms: ["RS256"] });
    return toCaller(claims, settings, "access");
  }
  // A bearer token where only Cloudflare Access is configured counts as no credential.
  throw unauthorized("missing_credentials");
}

async function verify(
  token: string,
  keys: KeySet,
  o: { issuer: string; audience: string[]; algorithms: string[] },
): Promise<JWTPayload> {
  if (token.length > MAX_TOKEN_BYTES) throw unauthorized("malformed_token");
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw unauthorized("malformed_token");
  }
  // Refused before any key lookup: `none`, HMAC (public key as secret) and anything off the allowlist.
  if (typeof alg !== "string" || !o.algorithms.includes(alg)) throw unauthorized("unsupported_algorithm");
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer: o.issuer,
      audience: o.audience,
      algorithms: o.algorithms,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["exp"],
    });
    // jose checks `iat` only against a maximum token age, never for the future.
    if (typeof payload.iat === "number" && payload.iat > Date.now() / 1000 + MAX_IAT_AHEAD_SECONDS) throw unauthorized("token_not_yet_valid");
    return payload;
  } catch (e) {
    throw classify(e);
  }
}

/** A jose failure as the 401 (or, for an unreachable key set, 502) the caller gets. */
export function classify(e: unknown): unknown {
  if (e instanceof HttpProblem) return e;
  if (e instanceof errors.JWTExpired) return unauthorized("token_expired");
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "nbf" || (e.claim === "iat" && e.reason === "check_failed")) return unauthorized("token_not_yet_valid");
    if (e.claim === "iss") return unauthorized("wrong_issuer");
    if (e.claim === "aud") return unauthorized("wrong_audience");
    return unauthorized("malformed_token");
  }
  if (e instanceof errors.JWKSNoMatchingKey) return unauthorized("unknown_key");
  if (e instanceof errors.JWSSignatureVerificationFailed) return unauthorized("invalid_signature");
  if (e instanceof errors.JOSEAlgNotAllowed) return unauthorized("unsupported_algorithm");
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid || !(e instanceof errors.JOSEError)) {
    // The issuer's key set could not be fetched: our problem, not the caller's.
    console.error(JSON.stringify({ level: "error", msg: "identity provider keys unavailable", error: String(e) }));
    return problem("upstream-unavailable");
  }
  return unauthorized("malformed_token");
}

function toCaller(claims: JWTPayload, settings: Settings, via: Caller["via"]): Caller {
  // Access service tokens carry `common_name` instead of a subject.
  const subject = typeof claims.sub === "string" && claims.sub ? claims.sub : via === "access" && typeof claims.common_name === "string" ? claims.common_name : "";
  if (!subject) throw unauthorized("missing_subject");
  const email = typeof claims.email === "string" ? claims.email : null;
  const roles = new Set(settings.roles.defaults);
  for (const r of rolesFrom(claimAt(claims, settings.roles.claim))) roles.add(r);
  const issuer = via === "oidc" ? settings.oidc!.issuer : settings.access!.issuer;
  return { issuer, subject, email, roles: [...roles].sort(), via };
}

/** Reads a claim by dotted path (e.g. `realm_access.roles`). */
function claimAt(claims: JWTPayload, path: string): unknown {
  let v: unknown = claims;
  for (const part of path.split(".")) {
    if (!v || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function rolesFrom(v: unknown): string[] {
  if (typeof v === "string") return v.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string" && x.length > 0);
  return [];
}

/** Does any of the caller's roles grant `verb` on `workflow` (and `signal`)? */
export function can(caller: Caller, settings: Settings, verb: "start" | "read" | "cancel" | "signal", workflow: string, signal?: string): boolean {
  const wanted = verb === "signal" ? [`${workflow}.${signal}`, `${workflow}.*`, `*.${signal}`, "*"] : [workflow, "*"];
  for (const role of caller.roles) {
    for (const p of settings.roles.grants[role] ?? []) {
      if (p === "*") return true;
      const [v, target] = [p.slice(0, p.indexOf(":")), p.slice(p.indexOf(":") + 1)];
      if (v === verb && wanted.includes(target)) return true;
    }
  }
  return false;
}

/** Could the caller send `signal` to some workflow? Lets an unauthorized signal be refused before any Temporal call. */
export function mightSignal(caller: Caller, settings: Settings, signal: string, workflows: Iterable<string>): boolean {
  for (const wf of workflows) if (can(caller, settings, "signal", wf, signal)) return true;
  return false;
}

/** May the caller use the codec server (encode and decode any payload)? `codec` or `*` in one of their roles. */
export function canUseCodec(caller: Caller, settings: Settings): boolean {
  return caller.roles.some((role) => (settings.roles.grants[role] ?? []).some((p) => p === "*" || p === CODEC_PERMISSION));
}
