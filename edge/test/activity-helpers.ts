// Calling POST /v1/activities/{name} as the worker does: a P-256 key pair generated here, its
// public half as the ACTIVITY_KEYS secret, and one ES256 token per request minted with jose and
// bound to the request (htm, htu, bsh, wid, aid, att). `test.*` activities beside the shipped
// ones count their runs, fail on demand and wait on their AbortSignal.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { defaultDeps, handle, type Deps } from "../src/app";
import { ActivityError, defineActivity, type ActivityContext } from "../src/activities/activity";
import { ActivityRegistry, EDGE_ACTIVITIES } from "../src/activities";
import { bodyHash } from "../src/activities/token";
import { BASE } from "./helpers";

export interface WorkerKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK & { kid: string };
}

export async function workerKey(kid: string): Promise<WorkerKey> {
  const pair = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey: pair.privateKey as CryptoKey, publicJwk: { ...(await exportJWK(pair.publicKey)), kid } };
}

/** The edge's variables with these keys in ACTIVITY_KEYS (the audience is the edge's origin by default). */
export function activityVars(keys: WorkerKey[], extra: Record<string, string> = {}): Record<string, string> {
  return { ACTIVITY_KEYS: JSON.stringify({ keys: keys.map((k) => k.publicJwk) }), ...extra };
}

/** Everything the tests count or observe, reset by `resetProbes`. */
export const probes = { runs: 0, aborted: [] as string[], envKeys: [] as string[][], waiting: undefined as (() => void) | undefined };
export function resetProbes(): void {
  probes.runs = 0;
  probes.aborted = [];
  probes.envKeys = [];
  probes.waiting = undefined;
}

const TEST_ACTIVITIES = [
  defineActivity<{ n?: number }, { runs: number }>({
    name: "test.count",
    description: "Counts its runs.",
    input: { type: "object", properties: { n: { type: "integer" } }, additionalProperties: false },
    output: { type: "object", properties: { runs: { type: "integer" } }, required: ["runs"], additionalProperties: false },
    async handler(_input, ctx: ActivityContext) {
      probes.runs++;
      probes.envKeys.push(Object.keys(ctx.env).sort());
      ctx.log.info("counted", { runs: probes.runs });
      return { runs: probes.runs };
    },
  }),
  defineActivity<{ mode: string }, object>({
    name: "test.fail",
    description: "Fails as asked.",
    input: { type: "object", properties: { mode: { enum: ["plain", "retryable", "non_retryable", "bad_output"] } }, required: ["mode"], additionalProperties: false },
    output: { type: "object", properties: { n: { type: "integer" } }, additionalProperties: false },
    async handler(input) {
      probes.runs++;
      if (input.mode === "plain") throw new Error("the backend said no");
      if (input.mode === "retryable") throw new ActivityError("Busy", "try later");
      if (input.mode === "non_retryable") throw new ActivityError("CardDeclined", "the card was declined", { nonRetryable: true });
      return { n: "not a number" };
    },
  }),
  defineActivity<object, object>({
    name: "test.wait",
    description: "Waits for its AbortSignal.",
    input: { type: "object", additionalProperties: false },
    output: { type: "object", additionalProperties: false },
    async handler(_input, ctx) {
      probes.runs++;
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          probes.aborted.push(String((ctx.signal.reason as Error)?.name ?? ctx.signal.reason));
          resolve();
        });
        probes.waiting?.();
      });
      return {};
    },
  }),
];

export const testRegistry = new ActivityRegistry([...EDGE_ACTIVITIES, ...TEST_ACTIVITIES]);

export interface Mint {
  key: WorkerKey;
  name: string;
  /** The exact body the token's bsh covers. */
  body: string;
  workflowId?: string;
  activityId?: string;
  attempt?: number;
  claims?: Record<string, unknown>;
  issuer?: string;
  audience?: string;
  /** Unix seconds; default now. */
  iat?: number;
  lifetime?: number;
  alg?: string;
}

export async function mint(m: Mint): Promise<string> {
  const iat = m.iat ?? Math.floor(Date.now() / 1000);
  const jti = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16)))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return new SignJWT({
    htm: "POST",
    htu: `/v1/activities/${m.name}`,
    bsh: await bodyHash(m.body),
    wid: m.workflowId ?? "order-o-1",
    aid: m.activityId ?? "1",
    att: m.attempt ?? 1,
    ...m.claims,
  })
    .setProtectedHeader({ alg: m.alg ?? "ES256", typ: "JWT", kid: m.key.kid })
    .setIssuer(m.issuer ?? "edgeflow-worker")
    .setAudience(m.audience ?? BASE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (m.lifetime ?? 30))
    .setJti(jti)
    .sign(m.key.privateKey);
}

export interface Post {
  vars: Record<string, string>;
  key: WorkerKey;
  input?: unknown;
  /** Sent instead of JSON.stringify(input). */
  body?: string;
  /** A token to send instead of a fresh one for this request. */
  token?: string;
  /** Overrides the minted token's fields. */
  mint?: Partial<Mint>;
  headers?: Record<string, string>;
  workflowId?: string;
  activityId?: string;
  attempt?: number;
  /** Unix ms; default now + 10 s. */
  deadline?: number;
  signal?: AbortSignal;
  deps?: Partial<Deps>;
}

/** One attempt as the worker sends it; returns the response and the token it carried. */
export async function postActivity(name: string, p: Post): Promise<{ res: Response; token: string }> {
  const body = p.body ?? JSON.stringify(p.input ?? {});
  const workflowId = p.workflowId ?? "order-o-1";
  const activityId = p.activityId ?? "1";
  const attempt = p.attempt ?? 1;
  const token = p.token ?? (await mint({ key: p.key, name, body, workflowId, activityId, attempt, ...p.mint }));
  const request = new Request(`${BASE}/v1/activities/${name}`, {
    method: "POST",
    body,
    signal: p.signal,
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${token}`,
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "Idempotency-Key": `${workflowId}/${activityId}`,
      "Edgeflow-Workflow-Id": workflowId,
      "Edgeflow-Run-Id": "run-1",
      "Edgeflow-Activity-Id": activityId,
      "Edgeflow-Attempt": String(attempt),
      "Edgeflow-Deadline": String(p.deadline ?? Date.now() + 10_000),
      ...p.headers,
    },
  });
  const ctx = createExecutionContext();
  const res = await handle(request, { ...env, ...p.vars } as Env, ctx, { ...defaultDeps(), activities: testRegistry, ...p.deps });
  await waitOnExecutionContext(ctx);
  return { res, token };
}
