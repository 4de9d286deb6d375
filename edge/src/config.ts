// Settings: every variable and secret of the Worker parsed once into typed
// values, with every bad one reported at once. A Worker cannot refuse to boot,
// so a bad configuration makes every request answer 500 `misconfigured` (and
// logs the reasons) rather than serve half-checked. Production refuses a
// loopback/dev token issuer.
import { checkSigningKey, MAX_TOKEN_TTL_SECONDS, type GatewaySettings } from "./gateway";
import { KEY_LEN, type EncryptionSettings } from "./codec";
import { b64decode } from "./temporal";
import type { Catalog } from "./schemas";
import { parseActivityKeys, type ActivityKeySettings } from "./activities/token";

export interface OidcSettings {
  issuer: string;
  audience: string[];
  jwksUrl: string;
  algorithms: string[];
}

export interface AccessSettings {
  /** `https://<team>.cloudflareaccess.com`: the tokens' issuer. */
  issuer: string;
  certsUrl: string;
  audience: string[];
}

export interface Settings {
  environment: "development" | "production";
  /**
   * How Temporal is reached: its HTTP API straight (`apiKey`, if any, as the
   * bearer) or through `edgeflow gateway` (`gateway`: a signed token per call,
   * no Temporal credential here). Same paths and JSON either way.
   */
  temporal: { baseUrl: string; namespace: string; apiKey?: string; gateway?: GatewaySettings; timeoutMs: number };
  oidc?: OidcSettings;
  access?: AccessSettings;
  roles: { claim: string; defaults: string[]; grants: Record<string, string[]> };
  maxWaitSeconds: number;
  maxBodyBytes: number;
  maxJsonDepth: number;
  /** HMAC keys of the completion webhook (several while rotating); empty disables the receiver. */
  webhookKeys: Uint8Array[];
  /** Temporal's completion callbacks: attached to every start when set (see callback.ts). */
  callback?: CallbackSettings;
  /** Payload encryption (codec.ts): absent, every payload goes out in plaintext. */
  encryption?: EncryptionSettings;
  /** The codec server (codecserver.ts): which browser origins may call it, and which without a token. */
  codecServer: CodecServerSettings;
  /**
   * `CALLER_HASH_KEY` (base64 of at least 32 bytes): when set, callers reach Temporal only as keyed
   * hashes, and run ids and input digests are keyed (scope.ts). Required with `ENCRYPTION_KEYS`.
   */
  callerHashKey?: Uint8Array;
  /**
   * `LEGACY_RUN_IDS=true`: while upgrading, a start by natural id first looks for this caller's run
   * under the older names (routes.ts `legacyRun`): one more Temporal call per start.
   */
  legacyRunIds: boolean;
  /** Edge activities (POST /v1/activities/{name}): the worker's keys; absent, the route answers 404. */
  activities?: ActivityKeySettings;
}

export interface CodecServerSettings {
  /** `CODEC_CORS_ORIGINS`: UI origins answered with CORS headers (credentials allowed); empty, none. */
  corsOrigins: string[];
  /**
   * `CODEC_ANONYMOUS_ORIGINS`: loopback origins (the dev Temporal UI, which has no login) whose
   * requests may encode and decode without a token. Refused at load unless loopback, and in production.
   */
  anonymousOrigins: string[];
}

export interface CallbackSettings {
  /** Where Temporal reaches this edge's `/v1/hooks/temporal-callback`; `?wf=<workflow id>` is appended. */
  url: string;
  /** HMAC keys of the per-run tokens: the first signs, every one verifies (rotation). */
  keys: Uint8Array[];
}

export type Loaded = { ok: true; settings: Settings } | { ok: false; errors: string[] };

/** Asymmetric algorithms only: `none` and HMAC (where a public key would become the secret) are never accepted. */
export const ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/**
 * The codec server's permission: decrypting any payload of the namespace, every run's and every
 * customer's, so no default role but `admin` (`*`) holds it.
 */
export const CODEC_PERMISSION = "codec";

export const DEFAULT_ROLE_GRANTS: Record<string, string[]> = {
  customer: ["start:*"],
  approver: ["start:*", "signal:*", "read:*"],
  admin: ["*"],
};

const cache = new WeakMap<object, Loaded>();

export function loadSettings(env: Env, catalog: Catalog): Loaded {
  const hit = cache.get(env);
  if (hit) return hit;
  const loaded = parse(env as unknown as Record<string, unknown>, catalog);
  cache.set(env, loaded);
  return loaded;
}

function parse(raw: Record<string, unknown>, catalog: Catalog): Loaded {
  const errors: string[] = [];
  const str = (k: string): string => (typeof raw[k] === "string" ? (raw[k] as string).trim() : "");
  const int = (k: string, dflt: number, min: number, max: number): number => {
    const v = str(k);
    if (!v) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      errors.push(`${k}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return n;
  };
  const flag = (k: string): boolean => {
    const v = str(k);
    if (v === "" || v === "false") return false;
    if (v !== "true") errors.push(`${k}: expected "true" or "false", got ${JSON.stringify(v.slice(0, 50))}`);
    return v === "true";
  };
  const list = (k: string): string[] =>
    str(k)
      .split(/[\s,]+/)
      .filter(Boolean);
  const url = (k: string, v: string): URL | null => {
    try {
      const u = new URL(v);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
      return u;
    } catch {
      errors.push(`${k}: not an http(s) URL: ${JSON.stringify(v)}`);
      return null;
    }
  };

  const environment = str("ENVIRONMENT") || "production";
  if (environment !== "development" && environment !== "production") {
    errors.push(`ENVIRONMENT: expected "development" or "production", got ${JSON.stringify(environment)}`);
  }
  const production = environment !== "development";

  const temporalUrl = str("TEMPORAL_HTTP_URL");
  if (!temporalUrl) errors.push("TEMPORAL_HTTP_URL: missing");
  else url("TEMPORAL_HTTP_URL", temporalUrl);

  let oidc: OidcSettings | undefined;
  const issuer = str("OIDC_ISSUER");
  if (issuer) {
    const iu = url("OIDC_ISSUER", issuer);
    const audience = list("OIDC_AUDIENCE");
    if (!audience.length) errors.push("OIDC_AUDIENCE: missing (required with OIDC_ISSUER)");
    const jwksUrl = str("OIDC_JWKS_URL") || `${issuer.replace(/\/+$/, "")}/.well-known/jwks.json`;
    const ju = url("OIDC_JWKS_URL", jwksUrl);
    const algorithms = list("OIDC_ALGORITHMS");
    if (!algorithms.length) algorithms.push("RS256", "ES256");
    for (const a of algorithms) {
      if (!ALLOWED_ALGORITHMS.includes(a)) errors.push(`OIDC_ALGORITHMS: ${a} is not allowed (use ${ALLOWED_ALGORITHMS.join(", ")})`);
    }
    if (production) {
      for (const [k, u] of [["OIDC_ISSUER", iu], ["OIDC_JWKS_URL", ju]] as const) {
        if (u && isDevHost(u)) errors.push(`${k}: ${u.origin} is a loopback/dev issuer, refused when ENVIRONMENT=production`);
        else if (u && u.protocol !== "https:") errors.push(`${k}: must be https when ENVIRONMENT=production`);
      }
    }
    oidc = { issuer, audience, jwksUrl, algorithms };
  }

  let access: AccessSettings | undefined;
  const team = str("ACCESS_TEAM_DOMAIN");
  if (team) {
    const origin = team.includes("://") ? team.replace(/\/+$/, "") : `https://${team.replace(/\/+$/, "")}`;
    url("ACCESS_TEAM_DOMAIN", origin);
    const audience = list("ACCESS_AUD");
    if (!audience.length) errors.push("ACCESS_AUD: missing (required with ACCESS_TEAM_DOMAIN)");
    access = { issuer: origin, certsUrl: `${origin}/cdn-cgi/access/certs`, audience };
  }
  if (!oidc && !access) errors.push("no identity provider: set OIDC_ISSUER or ACCESS_TEAM_DOMAIN");

  let grants = DEFAULT_ROLE_GRANTS;
  const grantsText = str("ROLE_GRANTS");
  if (grantsText) {
    try {
      const parsed = JSON.parse(grantsText) as unknown;
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      grants = {};
      for (const [role, perms] of Object.entries(parsed as Record<string, unknown>)) {
        if (!Array.isArray(perms) || !perms.every((p) => typeof p === "string")) {
          errors.push(`ROLE_GRANTS.${role}: expected an array of permission strings`);
          continue;
        }
        for (const p of perms) {
          const why = checkPermission(p, catalog);
          if (why) errors.push(`ROLE_GRANTS.${role}: ${JSON.stringify(p)} ${why}`);
        }
        grants[role] = perms;
      }
    } catch (e) {
      errors.push(`ROLE_GRANTS: not a JSON object (${e instanceof Error ? e.message : e})`);
    }
  }

  const keys = (k: string): Uint8Array[] =>
    list(k).flatMap((secret, i) => {
      try {
        const key = b64decode(secret.startsWith("whsec_") ? secret.slice(6) : secret);
        if (key.length < 16) throw new Error();
        return [key];
      } catch {
        // The secret itself is never logged, only its position.
        errors.push(`${k}: entry ${i + 1} is not whsec_<base64 of at least 16 bytes>`);
        return [];
      }
    });
  const webhookKeys = keys("WEBHOOK_SECRETS");

  let callback: CallbackSettings | undefined;
  const callbackUrl = str("CALLBACK_URL");
  if (callbackUrl) {
    const cu = url("CALLBACK_URL", callbackUrl);
    if (cu && (cu.search || cu.hash)) errors.push("CALLBACK_URL: must have no query string or fragment (the edge appends ?wf=<workflow id>)");
    // Temporal refuses callback URLs over 1000 characters; a workflow id takes up to ~600 escaped.
    if (callbackUrl.length > 300) errors.push("CALLBACK_URL: longer than 300 characters");
    if (cu && production && cu.protocol !== "https:") errors.push("CALLBACK_URL: must be https when ENVIRONMENT=production (the token travels in it)");
    const callbackKeys = keys("CALLBACK_SECRETS");
    if (!callbackKeys.length && !list("CALLBACK_SECRETS").length) errors.push("CALLBACK_SECRETS: missing (required with CALLBACK_URL)");
    callback = { url: callbackUrl, keys: callbackKeys };
  }

  const transport = str("TEMPORAL_TRANSPORT") || "temporal_http";
  const apiKey = str("TEMPORAL_API_KEY") || undefined;
  let gateway: GatewaySettings | undefined;
  if (transport === "gateway") {
    if (apiKey) errors.push("TEMPORAL_API_KEY: must be empty with TEMPORAL_TRANSPORT=gateway (the gateway holds the Temporal credential)");
    let signingKey: unknown;
    try {
      signingKey = JSON.parse(str("GATEWAY_SIGNING_KEY") || "null");
    } catch {
      signingKey = undefined;
    }
    // The key itself is never logged.
    const why = str("GATEWAY_SIGNING_KEY") ? checkSigningKey(signingKey) : "missing (required with TEMPORAL_TRANSPORT=gateway)";
    if (why) errors.push(`GATEWAY_SIGNING_KEY: ${why}`);
    gateway = {
      signingKey: signingKey as GatewaySettings["signingKey"],
      audience: str("GATEWAY_AUDIENCE") || "edgeflow-gateway",
      issuer: str("GATEWAY_ISSUER") || "edgeflow-edge",
      ttlSeconds: int("GATEWAY_TOKEN_TTL_SECONDS", 30, 1, MAX_TOKEN_TTL_SECONDS),
    };
  } else if (transport !== "temporal_http") {
    errors.push(`TEMPORAL_TRANSPORT: expected "temporal_http" or "gateway", got ${JSON.stringify(transport)}`);
  }

  const encryption = encryptionSettings(str("ENCRYPTION_KEYS"), str("ENCRYPTION_ACTIVE_KEY_ID"), errors);
  const callerHashKey = callerHashKeyOf(str("CALLER_HASH_KEY"), errors);
  if (encryption && !callerHashKey && !errors.some((e) => e.startsWith("CALLER_HASH_KEY"))) {
    // Encrypted payloads with the caller's subject in plaintext search attributes would defeat them.
    errors.push("CALLER_HASH_KEY: missing (required with ENCRYPTION_KEYS, so that no subject reaches Temporal in plaintext; e.g. `openssl rand -base64 32`)");
  }

  const origins = (k: string): string[] =>
    list(k).flatMap((v) => {
      const o = originOf(v);
      if (!o) {
        errors.push(`${k}: ${JSON.stringify(v)} is not an origin (scheme://host[:port], no path; \`*\` is not allowed)`);
        return [];
      }
      return [o];
    });
  const corsOrigins = origins("CODEC_CORS_ORIGINS");
  const anonymousOrigins = origins("CODEC_ANONYMOUS_ORIGINS");
  for (const o of anonymousOrigins) {
    // The Origin header is whatever the caller says: only safe where nobody but local processes reaches the edge.
    if (!isDevHost(new URL(o))) errors.push(`CODEC_ANONYMOUS_ORIGINS: ${o} is not a loopback origin (only the dev Temporal UI on this machine may decode without a token)`);
    else if (production) errors.push(`CODEC_ANONYMOUS_ORIGINS: refused when ENVIRONMENT=production (${o} would decode without a token)`);
  }

  const settings: Settings = {
    environment: production ? "production" : "development",
    temporal: {
      baseUrl: temporalUrl.replace(/\/+$/, ""),
      namespace: str("TEMPORAL_NAMESPACE") || "default",
      apiKey,
      gateway,
      timeoutMs: int("TEMPORAL_TIMEOUT_SECONDS", 10, 1, 120) * 1000,
    },
    oidc,
    access,
    roles: { claim: str("ROLES_CLAIM") || "roles", defaults: list("DEFAULT_ROLES"), grants },
    maxWaitSeconds: int("MAX_WAIT_SECONDS", 30, 0, 300),
    maxBodyBytes: int("MAX_BODY_BYTES", 65536, 256, 10 * 1024 * 1024),
    maxJsonDepth: int("MAX_JSON_DEPTH", 32, 2, 512),
    webhookKeys,
    callback,
    encryption,
    codecServer: { corsOrigins, anonymousOrigins },
    callerHashKey,
    legacyRunIds: flag("LEGACY_RUN_IDS"),
    activities: parseActivityKeys(raw, errors),
  };
  return errors.length ? { ok: false, errors } : { ok: true, settings };
}

/**
 * `ENCRYPTION_KEYS` (a JSON object: key id → base64 of 32 bytes) and `ENCRYPTION_ACTIVE_KEY_ID`
 * (the id that encrypts; every key decrypts). Both or neither. Errors name the variable and the
 * key id, never a key.
 */
function encryptionSettings(keysText: string, activeKeyId: string, errors: string[]): EncryptionSettings | undefined {
  if (!keysText) {
    if (activeKeyId) errors.push("ENCRYPTION_ACTIVE_KEY_ID: set, but ENCRYPTION_KEYS is empty (the active key must be one of them)");
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(keysText);
  } catch {
    parsed = undefined;
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    errors.push('ENCRYPTION_KEYS: not a JSON object of key id to base64 of 32 bytes ({"<id>": "<base64>"})');
    return undefined;
  }
  const keys = new Map<string, Uint8Array>();
  for (const [id, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!/^[\x21-\x7e]{1,100}$/.test(id)) {
      errors.push(`ENCRYPTION_KEYS: key id ${JSON.stringify(id.slice(0, 100))} must be 1 to 100 printable ASCII characters without spaces`);
      continue;
    }
    let key: Uint8Array | undefined;
    try {
      key = typeof value === "string" ? b64decode(value.trim()) : undefined;
    } catch {
      key = undefined;
    }
    if (!key) errors.push(`ENCRYPTION_KEYS.${id}: not base64 (expected the base64 of 32 bytes, e.g. from \`openssl rand -base64 32\`)`);
    else if (key.length !== KEY_LEN) errors.push(`ENCRYPTION_KEYS.${id}: ${key.length} bytes, expected ${KEY_LEN} (an AES-256 key)`);
    else keys.set(id, key);
  }
  if (!Object.keys(parsed as object).length) errors.push("ENCRYPTION_KEYS: no key (unset it to turn encryption off)");
  if (!activeKeyId) errors.push("ENCRYPTION_ACTIVE_KEY_ID: missing (required with ENCRYPTION_KEYS: the id of the key that encrypts)");
  else if (!(activeKeyId in (parsed as object))) {
    errors.push(`ENCRYPTION_ACTIVE_KEY_ID: \`${activeKeyId}\` names no key in ENCRYPTION_KEYS (it has ${Object.keys(parsed as object).map((id) => `\`${id}\``).join(", ") || "none"})`);
  }
  return { keys, activeKeyId };
}

/** `CALLER_HASH_KEY`: base64 of 32 bytes or more; errors never show the key. */
function callerHashKeyOf(text: string, errors: string[]): Uint8Array | undefined {
  if (!text) return undefined;
  let key: Uint8Array | undefined;
  try {
    key = b64decode(text.trim());
  } catch {
    key = undefined;
  }
  if (!key) errors.push("CALLER_HASH_KEY: not base64 (expected the base64 of at least 32 random bytes, e.g. from `openssl rand -base64 32`)");
  else if (key.length < 32) errors.push(`CALLER_HASH_KEY: ${key.length} bytes, expected at least 32`);
  else return key;
  return undefined;
}

/** `v` as a bare origin (`https://ui.example.com`, `http://127.0.0.1:8233`), or null if it is anything else. */
function originOf(v: string): string | null {
  try {
    const u = new URL(v);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    return v.replace(/\/$/, "") === u.origin ? u.origin : null;
  } catch {
    return null;
  }
}

/** Loopback, unspecified or `.localhost` hosts: where `edgeflow dev` runs its token issuer. */
export function isDevHost(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return (
    h === "localhost" ||
    h.endsWith(".localhost") ||
    /^127\.\d+\.\d+\.\d+$/.test(h) ||
    h === "0.0.0.0" ||
    h === "::1" ||
    h === "::" ||
    h === "0:0:0:0:0:0:0:1"
  );
}

/**
 * Why a permission string is invalid, or null. Forms: `*`, `start:W`, `read:W`, `cancel:W`,
 * `signal:W.S` (W, S may be `*`), and `codec` (the codec server: encode and decode any payload).
 */
function checkPermission(p: string, catalog: Catalog): string | null {
  if (p === "*" || p === CODEC_PERMISSION) return null;
  const m = /^(start|read|cancel|signal):(.+)$/.exec(p);
  if (!m) return "is not start:W, read:W, cancel:W, signal:W.S, codec or *";
  const [, verb, target] = m;
  let wf = target;
  let sig: string | undefined;
  if (verb === "signal" && target !== "*") {
    const dot = target.lastIndexOf(".");
    if (dot < 0) return "needs the form signal:W.S";
    wf = target.slice(0, dot);
    sig = target.slice(dot + 1);
  }
  if (wf === "*") return null;
  const def = catalog.get(wf);
  if (!def) return `names workflow ${wf}, which is not in the schema manifest`;
  if (sig && sig !== "*" && !def.message(sig)) return `names signal ${sig}, which ${wf} does not declare`;
  return null;
}
