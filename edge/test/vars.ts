// Variables and secrets the unit tests run the Worker with (fake upstreams, see fakes.ts).
export const ISSUER = "https://issuer.test";
export const AUDIENCE = "edgeflow";
export const ACCESS_TEAM = "https://team.cloudflareaccess.test";
export const ACCESS_AUD = "access-app-aud-1234";
export const TEMPORAL_URL = "http://temporal.test:7243";
// Two secrets, as during a rotation: the worker may sign with either.
export const WEBHOOK_SECRET_OLD = "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LTMyLWJ5dGVzIQ==";
export const WEBHOOK_SECRET_NEW = "whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0LTMyLWJ5dGVzIQ==";

export const TEST_VARS: Record<string, string> = {
  ENVIRONMENT: "development",
  TEMPORAL_HTTP_URL: TEMPORAL_URL,
  TEMPORAL_NAMESPACE: "default",
  TEMPORAL_TIMEOUT_SECONDS: "1",
  OIDC_ISSUER: ISSUER,
  OIDC_AUDIENCE: AUDIENCE,
  OIDC_JWKS_URL: `${ISSUER}/.well-known/jwks.json`,
  OIDC_ALGORITHMS: "RS256,ES256",
  ACCESS_TEAM_DOMAIN: ACCESS_TEAM,
  ACCESS_AUD,
  ROLES_CLAIM: "roles",
  DEFAULT_ROLES: "",
  ROLE_GRANTS: JSON.stringify({ customer: ["start:*"], approver: ["start:*", "signal:*", "read:*"], admin: ["*"] }),
  MAX_WAIT_SECONDS: "5",
  MAX_BODY_BYTES: "4096",
  MAX_JSON_DEPTH: "8",
  TEMPORAL_API_KEY: "test-temporal-api-key",
  WEBHOOK_SECRETS: `${WEBHOOK_SECRET_OLD}, ${WEBHOOK_SECRET_NEW}`,
};

// A deployment with Temporal's completion callbacks on (callWith(CALLBACKS, …)); the unit tests' default has them off.
export const CALLBACK_SECRET = "whsec_Y2FsbGJhY2stc2VjcmV0LWNhbGxiYWNrLXNlY3JldCE=";
export const CALLBACKS: Record<string, string> = { CALLBACK_URL: "https://edge.test/v1/hooks/temporal-callback", CALLBACK_SECRETS: CALLBACK_SECRET };
export const CALLBACK_KEYS = [Uint8Array.from(atob(CALLBACK_SECRET.slice(6)), (c) => c.charCodeAt(0))];
