// Tokens for `edgeflow gateway`: one ES256 JWT per call to Temporal, signed with
// the key in the GATEWAY_SIGNING_KEY secret, naming the gateway (aud), this edge
// (iss), the caller (sub) and the edge's request id (rid), with a unique jti and
// a lifetime of GATEWAY_TOKEN_TTL_SECONDS (at most 60), and bound to the one call
// it is minted for: `htm` (method), `htu` (path and query as sent), `bsh`
// (SHA-256 of the body, base64url), the same binding the worker's tokens to the
// edge carry (activities/token.ts). The gateway holds the Temporal credential;
// the edge holds only this key.
import { importJWK, SignJWT, type JWK } from "jose";
import { bodyHash } from "./activities/token";

export interface GatewaySettings {
  /** The private JWK (EC P-256, with `kid`), as given in the secret. */
  signingKey: JWK & { kid: string };
  audience: string;
  issuer: string;
  ttlSeconds: number;
}

/** Longest token lifetime the gateway accepts. */
export const MAX_TOKEN_TTL_SECONDS = 60;

/** Why a GATEWAY_SIGNING_KEY value is unusable, or null. */
export function checkSigningKey(key: unknown): string | null {
  if (!key || typeof key !== "object" || Array.isArray(key)) return "not a JSON object (a private JWK)";
  const k = key as Record<string, unknown>;
  if (k.kty !== "EC" || k.crv !== "P-256") return "not an EC P-256 key (ES256)";
  if (typeof k.d !== "string" || !k.d) return "has no private part (`d`)";
  if (typeof k.kid !== "string" || !k.kid) return "has no `kid` (the gateway picks its public key by kid)";
  return null;
}

// Imported once per isolate and key.
const imported = new Map<string, Promise<CryptoKey | Uint8Array>>();

/** The call a token is minted for. */
export interface BoundRequest {
  method: string;
  /** The full URL as sent; the token names its path and query. */
  url: string;
  /** The exact body text; none hashes as the empty string. */
  body?: string;
}

/** `Bearer <token>` for one call (`req`) made for `subject` while serving `requestId`. */
export async function gatewayAuthorization(g: GatewaySettings, subject: string, requestId: string, req: BoundRequest): Promise<string> {
  const cacheKey = JSON.stringify(g.signingKey);
  let key = imported.get(cacheKey);
  if (!key) {
    key = importJWK({ ...g.signingKey, alg: "ES256" }, "ES256");
    imported.set(cacheKey, key);
  }
  const now = Math.floor(Date.now() / 1000);
  const u = new URL(req.url);
  const token = await new SignJWT({ rid: requestId, htm: req.method, htu: u.pathname + u.search, bsh: await bodyHash(req.body ?? "") })
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: g.signingKey.kid })
    .setIssuer(g.issuer)
    .setAudience(g.audience)
    .setSubject(subject)
    .setJti(crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + g.ttlSeconds)
    .sign(await key);
  return `Bearer ${token}`;
}
