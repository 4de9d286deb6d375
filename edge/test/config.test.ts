// Settings: a bad configuration makes every request answer 500 `misconfigured`
// (with one clear log line listing every problem) instead of serving; above all,
// production refuses the loopback dev token issuer.
import { afterEach, describe, expect, it, vi } from "vitest";
import { installUpstreams } from "./fakes";
import { callWith, read } from "./helpers";

afterEach(() => vi.restoreAllMocks());

async function expectMisconfigured(vars: Record<string, string>, logged: RegExp[]) {
  await installUpstreams();
  const errors = vi.spyOn(console, "error").mockImplementation(() => {});
  for (const path of ["/healthz", "/v1/workflows/order", "/v1/runs/order-1"]) {
    const r = await read(await callWith(vars, path));
    expect(r.status).toBe(500);
    expect(r.body.type).toBe("urn:edgeflow:problem:misconfigured");
    // Callers learn nothing about the configuration.
    expect(r.body.detail).toBeUndefined();
  }
  const lines = errors.mock.calls.map((c) => String(c[0]));
  expect(lines.filter((l) => l.includes("refusing to serve"))).toHaveLength(1);
  for (const re of logged) expect(lines[0]).toMatch(re);
}

describe("configuration", () => {
  it("refuses to serve in production with a loopback dev issuer", async () => {
    await expectMisconfigured(
      { ENVIRONMENT: "production", OIDC_ISSUER: "http://127.0.0.1:7351", OIDC_JWKS_URL: "http://127.0.0.1:7351/.well-known/jwks.json" },
      [/OIDC_ISSUER: http:\/\/127\.0\.0\.1:7351 is a loopback\/dev issuer/, /OIDC_JWKS_URL/],
    );
  });

  it("refuses localhost issuers in production too", async () => {
    await expectMisconfigured({ ENVIRONMENT: "production", OIDC_ISSUER: "http://localhost:9000", OIDC_JWKS_URL: "" }, [/loopback/]);
  });

  it("serves with the same dev issuer when ENVIRONMENT=development", async () => {
    await installUpstreams();
    const r = await callWith({ ENVIRONMENT: "development", OIDC_ISSUER: "http://127.0.0.1:7351", OIDC_JWKS_URL: "" }, "/healthz");
    expect(r.status).toBe(200);
  });

  it("serves in production with an https issuer", async () => {
    await installUpstreams();
    expect((await callWith({ ENVIRONMENT: "production" }, "/healthz")).status).toBe(200);
  });

  it("reports every bad setting at once", async () => {
    await expectMisconfigured(
      {
        TEMPORAL_HTTP_URL: "",
        MAX_WAIT_SECONDS: "forever",
        OIDC_ALGORITHMS: "RS256,HS256,none",
        ROLE_GRANTS: JSON.stringify({ customer: ["start:refund", "signal:order.ship", "fly"] }),
        WEBHOOK_SECRETS: "whsec_!!!notbase64",
      },
      [
        /TEMPORAL_HTTP_URL: missing/,
        /MAX_WAIT_SECONDS/,
        /HS256 is not allowed/,
        /none is not allowed/,
        /start:refund.*not in the schema manifest/,
        /signal:order\.ship.*does not declare/,
        /fly.*is not start:W/,
        /WEBHOOK_SECRETS: entry 1/,
      ],
    );
  });

  it("never logs a webhook secret", async () => {
    await installUpstreams();
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    await callWith({ WEBHOOK_SECRETS: "whsec_c2hvcnQ=" }, "/healthz");
    expect(errors.mock.calls.map((c) => String(c[0])).join("\n")).not.toContain("c2hvcnQ");
  });

  it("needs an identity provider", async () => {
    await expectMisconfigured({ OIDC_ISSUER: "", ACCESS_TEAM_DOMAIN: "" }, [/no identity provider/]);
  });
});
