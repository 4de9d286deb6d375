// Identity: every way a credential can fail answers 401 with one stable code and
// nothing else about why; a valid caller without the right role gets 403; nothing
// reaches Temporal before the caller is known.
import { SignJWT, UnsecuredJWT } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import { installUpstreams, UNREACHABLE_JWKS, type Upstreams } from "./fakes";
import { call, callWith, order, read } from "./helpers";
import { AUDIENCE, ISSUER } from "./vars";

let up: Upstreams;
beforeEach(async () => {
  up = await installUpstreams();
});

async function startWith(headers: Record<string, string>) {
  return read(await call("/v1/workflows/order", { body: order(), headers }));
}

async function expect401(headers: Record<string, string>, code: string) {
  const r = await startWith(headers);
  expect(r.status).toBe(401);
  expect(r.headers.get("Content-Type")).toBe("application/problem+json");
  expect(r.body.type).toBe("urn:edgeflow:problem:unauthorized");
  expect(r.body.code).toBe(code);
  // The stable code is all a caller learns: no library message, no claim values.
  expect(Object.keys(r.body).sort()).toEqual(["code", "instance", "request_id", "status", "title", "type"]);
  expect(r.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm="edgeflow"/);
  expect(up.temporal.calls).toHaveLength(0);
  return r;
}

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

describe("OIDC bearer tokens", () => {
  it("starts a workflow for a valid RS256 token", async () => {
    const r = await startWith(bearer(await up.issuer.mint()));
    expect(r.status).toBe(202);
  });

  it("accepts ES256 tokens from the same issuer", async () => {
    const r = await startWith(bearer(await up.issuer.mint({ key: "ec" })));
    expect(r.status).toBe(202);
  });

  it("refuses a request without credentials", async () => {
    const r = await expect401({}, "missing_credentials");
    expect(r.headers.get("WWW-Authenticate")).toBe('Bearer realm="edgeflow"');
  });

  it("refuses a header that is not a bearer token", async () => {
    await expect401({ Authorization: "Basic YWxpY2U6c2VjcmV0" }, "malformed_token");
  });

  it("refuses garbage in place of a JWT", async () => {
    await expect401(bearer("not.a.jwt"), "malformed_token");
  });

  it("refuses an expired token", async () => {
    await expect401(bearer(await up.issuer.mint({ expiresIn: -3600 })), "token_expired");
  });

  it("refuses a token that is not valid yet", async () => {
    await expect401(bearer(await up.issuer.mint({ notBefore: 3600 })), "token_not_yet_valid");
  });

  it("refuses a token issued more than 60 s in the future (no nbf), and accepts one 30 s ahead (clock skew)", async () => {
    await expect401(bearer(await up.issuer.mint({ issuedAt: 3600, expiresIn: 7200 })), "token_not_yet_valid");
    await expect401(bearer(await up.issuer.mint({ issuedAt: 61 })), "token_not_yet_valid");
    expect((await startWith(bearer(await up.issuer.mint({ issuedAt: 30 })))).status).toBe(202);
  });

  it("refuses a token from another issuer", async () => {
    await expect401(bearer(await up.issuer.mint({ issuer: "https://evil.test" })), "wrong_issuer");
  });

  it("refuses a token for another audience", async () => {
    await expect401(bearer(await up.issuer.mint({ audience: "someone-else" })), "wrong_audience");
  });

  it("refuses alg: none", async () => {
    const token = new UnsecuredJWT({ sub: "alice", roles: ["admin"] }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("10m").encode();
    await expect401(bearer(token), "unsupported_algorithm");
  });

  it("refuses HS256 signed with the issuer's public key as the secret", async () => {
    const secret = new TextEncoder().encode(JSON.stringify(up.issuer.rsa.publicJwk));
    const token = await new SignJWT({ sub: "alice", roles: ["admin"] })
      .setProtectedHeader({ alg: "HS256", kid: "rsa-1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("10m")
      .sign(secret);
    await expect401(bearer(token), "unsupported_algorithm");
  });

  it("refuses a forged signature (right kid, wrong key)", async () => {
    await expect401(bearer(await up.issuer.mint({ key: "stranger" })), "invalid_signature");
  });

  it("refuses a token whose payload was altered after signing", async () => {
    const [h, , s] = (await up.issuer.mint()).split(".");
    const payload = btoa(JSON.stringify({ sub: "mallory", roles: ["admin"], iss: ISSUER, aud: AUDIENCE, exp: 4e9 })).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    await expect401(bearer(`${h}.${payload}.${s}`), "invalid_signature");
  });

  it("refuses a token signed by a key id the issuer does not publish", async () => {
    await expect401(bearer(await up.issuer.mint({ kid: "retired-key" })), "unknown_key");
  });

  it("refuses a token without a subject", async () => {
    await expect401(bearer(await up.issuer.mint({ claims: { sub: "" } })), "missing_subject");
  });

  it("answers 502, not 401, when the issuer's keys cannot be fetched", async () => {
    const r = await read(await callWith({ OIDC_JWKS_URL: UNREACHABLE_JWKS }, "/v1/workflows/order", { token: await up.issuer.mint(), body: order() }));
    expect(r.status).toBe(502);
    expect(r.body.type).toBe("urn:edgeflow:problem:upstream-unavailable");
    expect(JSON.stringify(r.body)).not.toContain("ECONNREFUSED");
    expect(up.temporal.calls).toHaveLength(0);
  });
});

describe("Cloudflare Access tokens", () => {
  it("accepts a valid Cf-Access-Jwt-Assertion", async () => {
    const token = await up.issuer.mint({ key: "access", claims: { email: "bob@example.com", roles: ["customer"] } });
    const r = await startWith({ "Cf-Access-Jwt-Assertion": token });
    expect(r.status).toBe(202);
    const run = [...up.temporal.runs.values()][0];
    expect(run.memo.edge_email).toBeDefined();
  });

  it("refuses an Access token for another application", async () => {
    const token = await up.issuer.mint({ key: "access", audience: "other-app" });
    await expect401({ "Cf-Access-Jwt-Assertion": token }, "wrong_audience");
  });

  it("refuses an OIDC token presented as an Access token", async () => {
    const token = await up.issuer.mint();
    await expect401({ "Cf-Access-Jwt-Assertion": token }, "unknown_key");
  });
});

describe("roles", () => {
  it("answers 403 to a valid caller whose roles may not start the workflow", async () => {
    const r = await startWith(bearer(await up.issuer.mint({ claims: { roles: ["auditor"] } })));
    expect(r.status).toBe(403);
    expect(r.body.type).toBe("urn:edgeflow:problem:forbidden");
    expect(up.temporal.calls).toHaveLength(0);
  });

  it("reads roles from a space-separated string claim too", async () => {
    const r = await startWith(bearer(await up.issuer.mint({ claims: { roles: "auditor customer" } })));
    expect(r.status).toBe(202);
  });
});
