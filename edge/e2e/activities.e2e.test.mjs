// Edge activities' replay refusal survives the edge's process: the edge in workerd
// (scripts/serve-workerd.mjs, the deployable bundle with wrangler.jsonc's KV, D1 and Durable
// Object bindings) with its state in a directory, a kv.put accepted, workerd killed (SIGKILL,
// as a crash), started again on the same state: the same request with the same token is
// refused 401 `token_replayed` (the ActivityTokens Durable Object's storage kept the jti),
// while the value the first call wrote is still in ACTIVITY_KV. No Temporal needed.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { startEdgeWorkerd } from "./harness.mjs";

const AUDIENCE = "https://edge.e2e.test";
const b64url = (buf) => Buffer.from(buf).toString("base64url");

const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
const VARS = {
  ENVIRONMENT: "development",
  // Nothing here calls Temporal or the issuer: the edge only needs a valid configuration.
  TEMPORAL_HTTP_URL: "http://127.0.0.1:9",
  OIDC_ISSUER: "http://127.0.0.1:9",
  OIDC_AUDIENCE: "edgeflow",
  ACTIVITY_KEYS: JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "worker-e2e" }] }),
  EDGE_ACTIVITY_AUDIENCE: AUDIENCE,
};

/** One attempt as the worker sends it, with `token` or a fresh one bound to it. */
async function attempt(edge, name, input, { token, activityId = "1" } = {}) {
  const body = JSON.stringify(input);
  const path = `/v1/activities/${name}`;
  const wid = "order-o-e2e";
  const now = Math.floor(Date.now() / 1000);
  token ??= await new SignJWT({ htm: "POST", htu: path, bsh: b64url(createHash("sha256").update(body).digest()), wid, aid: activityId, att: 1 })
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "worker-e2e" })
    .setIssuer("edgeflow-worker")
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .setJti(b64url(randomBytes(16)))
    .sign(privateKey);
  const res = await fetch(edge.url + path, {
    method: "POST",
    body,
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${token}`,
      "Idempotency-Key": `${wid}/${activityId}`,
      "Edgeflow-Workflow-Id": wid,
      "Edgeflow-Run-Id": "run-e2e",
      "Edgeflow-Activity-Id": activityId,
      "Edgeflow-Attempt": "1",
      "Edgeflow-Deadline": String(Date.now() + 30_000),
    },
  });
  return { status: res.status, body: await res.json(), token };
}

const state = mkdtempSync(join(tmpdir(), "edgeflow-edge-state-"));
let edge;
after(async () => {
  await edge?.stop();
  rmSync(state, { recursive: true, force: true });
});

it("refuses a token replayed after workerd is killed and restarted on the same state", async () => {
  edge = await startEdgeWorkerd(VARS, undefined, { stateDir: state });
  const key = `order-status/o-${randomBytes(4).toString("hex")}`;
  const first = await attempt(edge, "kv.put", { key, value: '{"status":"paid"}' });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body, { key });

  await edge.crash();
  edge = await startEdgeWorkerd(VARS, undefined, { stateDir: state });

  const replay = await attempt(edge, "kv.put", { key, value: '{"status":"paid"}' }, { token: first.token });
  assert.equal(replay.status, 401, JSON.stringify(replay.body));
  assert.equal(replay.body.code, "token_replayed");
  // The first call's write outlived the crash too; a fresh token is accepted.
  const del = await attempt(edge, "kv.delete", { key }, { activityId: "2" });
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.deepEqual(del.body, { key, deleted: true });
});
