// Keeps openapi.yaml true: its operations are exactly the route table; its
// problem types and 401 codes are exactly the code's; and a scenario for every
// status of every operation shows that each status the code returns is
// documented (with a body matching the documented schema) and that each
// documented status is one the code really returns.
import { Validator } from "@cfworker/json-schema";
import { beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import specText from "../openapi.yaml?raw";
import { ROUTES } from "../src/routes";
import { PROBLEMS, PROBLEM_TYPE_PREFIX } from "../src/problem";
import { installUpstreams, type Upstreams } from "./fakes";
import { call, callWith, completion, order, read, sign } from "./helpers";
import { CALLBACK_KEYS, CALLBACKS, WEBHOOK_SECRET_NEW } from "./vars";
import { encodePayload } from "../src/temporal";
import { CALLBACK_PATH, callbackToken } from "../src/callback";
import { activityVars, postActivity, workerKey, type WorkerKey } from "./activity-helpers";

const spec = parse(specText) as any;
const METHODS = ["get", "post", "put", "patch", "delete", "options"];

function resolve(node: any): any {
  while (node && node.$ref) {
    node = node.$ref
      .slice(2)
      .split("/")
      .reduce((o: any, k: string) => o[k], spec);
  }
  return node;
}

// Documented schemas, validated with the same library the edge uses (OpenAPI 3.1 = JSON Schema 2020-12).
const defs = JSON.parse(JSON.stringify(spec.components.schemas).replaceAll("#/components/schemas/", "#/$defs/"));
function validatorFor(schema: any): Validator {
  const rewritten = JSON.parse(JSON.stringify(schema).replaceAll("#/components/schemas/", "#/$defs/"));
  return new Validator({ ...rewritten, $defs: defs }, "2020-12", false);
}

describe("openapi.yaml", () => {
  it("describes exactly the routes the code serves", () => {
    const documented = Object.entries(spec.paths).flatMap(([path, item]: [string, any]) =>
      Object.keys(item)
        .filter((m) => METHODS.includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });

  it("lists exactly the problem types the code can answer with", () => {
    const documented = spec.components.schemas.Problem.properties.type.enum;
    expect([...documented].sort()).toEqual(Object.keys(PROBLEMS).map((s) => PROBLEM_TYPE_PREFIX + s).sort());
  });

  it("documents each problem type with its status somewhere", () => {
    const statuses = new Set<number>();
    for (const item of Object.values(spec.paths) as any[]) {
      for (const m of METHODS) if (item[m]) Object.keys(item[m].responses).forEach((s) => statuses.add(Number(s)));
    }
    // 404/405 for unknown paths and methods are described in info.description.
    for (const [slug, p] of Object.entries(PROBLEMS)) {
      if (slug === "method-not-allowed") continue;
      expect(statuses, slug).toContain(p.status);
    }
  });
});

type Op =
  | "GET /healthz"
  | "POST /v1/workflows/{name}"
  | "GET /v1/runs/{id}"
  | "POST /v1/runs/{id}/signals/{name}"
  | "POST /v1/runs/{id}/cancel"
  | "POST /v1/hooks/temporal"
  | "POST /v1/hooks/temporal-callback"
  | "POST /v1/codec/encode"
  | "POST /v1/codec/decode"
  | "OPTIONS /v1/codec/encode"
  | "OPTIONS /v1/codec/decode"
  | "POST /v1/activities/{name}";

interface Scenario {
  op: Op;
  status: number;
  name: string;
  run: () => Promise<Response>;
}

let up: Upstreams;
let customer: string;
let approver: string;
let runId: string;
let runRun: string;
let worker: WorkerKey;

beforeEach(async () => {
  worker ??= await workerKey("worker-1");
  up = await installUpstreams();
  customer = await up.issuer.mint({ claims: { sub: `c-${crypto.randomUUID()}`, roles: ["customer"] } });
  approver = await up.issuer.mint({ claims: { sub: "dave", roles: ["approver"] } });
  const started = await read(await call("/v1/workflows/order", { token: customer, body: order() }));
  runId = started.body.workflow_id;
  runRun = started.body.run_id;
  up.temporal.calls = [];
});

const json = { "Content-Type": "application/json" };
const misconfigured = { ENVIRONMENT: "production", OIDC_ISSUER: "http://127.0.0.1:1", OIDC_JWKS_URL: "" };
const start = (o: Parameters<typeof call>[1] = {}) => call("/v1/workflows/order", { token: customer, body: order(), ...o });
const sig = (o: Parameters<typeof call>[1] = {}) => call(`/v1/runs/${runId}/signals/approve`, { method: "POST", token: approver, body: {}, ...o });
const cancel = (token = customer) => call(`/v1/runs/${runId}/cancel`, { method: "POST", token });
const getRun = (token = customer, id = runId) => call(`/v1/runs/${id}`, { token });
const fault = (f: Upstreams["temporal"]["faults"][number]) => up.temporal.faults.push(f);

const runToken = (id: string) => callbackToken(CALLBACK_KEYS, "default", id);
const callback = (id: string, token: string) => callWith(CALLBACKS, `${CALLBACK_PATH}?wf=${encodeURIComponent(id)}`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });

async function hook(body: string, headers: Record<string, string> = {}) {
  const ts = Math.floor(Date.now() / 1000);
  const id = `msg_${crypto.randomUUID()}`;
  return call("/v1/hooks/temporal", {
    method: "POST",
    raw: body,
    headers: { ...json, "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": await sign(WEBHOOK_SECRET_NEW, id, ts, body), ...headers },
  });
}

// A deployment with payload keys and a UI origin: the codec server is on.
const UI = "https://temporal-ui.example.com";
const CODEC = { ENCRYPTION_KEYS: JSON.stringify({ k1: btoa("k".repeat(32)) }), ENCRYPTION_ACTIVE_KEY_ID: "k1", CALLER_HASH_KEY: btoa("h".repeat(32)), CODEC_CORS_ORIGINS: UI };
const admin = () => up.issuer.mint({ claims: { roles: ["admin"] } });
const codec = (op: string, o: Parameters<typeof call>[1] & { vars?: Record<string, string> } = {}) =>
  callWith(o.vars ?? CODEC, `/v1/codec/${op}`, { body: { payloads: [encodePayload({ a: 1 })] }, ...o });
const preflight = (op: string, origin = UI, vars: Record<string, string> = CODEC) => callWith(vars, `/v1/codec/${op}`, { method: "OPTIONS", headers: { Origin: origin } });
const undecryptable = { metadata: { encoding: btoa("binary/encrypted"), "encryption-key-id": btoa("gone") }, data: btoa("x".repeat(40)) };

function codecScenarios(op: "encode" | "decode"): Scenario[] {
  const post = `POST /v1/codec/${op}` as Op;
  const options = `OPTIONS /v1/codec/${op}` as Op;
  return [
    { op: post, status: 200, name: "admin", run: async () => codec(op, { token: await admin() }) },
    op === "decode"
      ? { op: post, status: 400, name: "undecryptable", run: async () => codec(op, { token: await admin(), body: { payloads: [undecryptable] } }) }
      : { op: post, status: 400, name: "not payloads", run: async () => codec(op, { token: await admin(), body: { payloads: 1 } }) },
    { op: post, status: 401, name: "no token", run: () => codec(op) },
    { op: post, status: 403, name: "no codec role", run: () => codec(op, { token: customer }) },
    { op: post, status: 404, name: "no keys", run: async () => codec(op, { vars: {}, token: await admin() }) },
    { op: post, status: 413, name: "over 4 MiB", run: async () => codec(op, { token: await admin(), body: { payloads: [{ data: "A".repeat(4 * 1024 * 1024) }] } }) },
    { op: post, status: 415, name: "not json", run: async () => codec(op, { token: await admin(), body: undefined, raw: "x", headers: { "Content-Type": "text/plain" } }) },
    { op: post, status: 500, name: "misconfigured", run: () => codec(op, { vars: { ...CODEC, ...misconfigured } }) },
    { op: options, status: 204, name: "UI origin", run: () => preflight(op) },
    { op: options, status: 403, name: "other origin", run: () => preflight(op, "https://evil.example.com") },
    { op: options, status: 404, name: "no keys", run: () => preflight(op, UI, {}) },
    { op: options, status: 500, name: "misconfigured", run: () => preflight(op, UI, { ...CODEC, ...misconfigured }) },
  ];
}

const activity = async (name: string, o: Partial<Parameters<typeof postActivity>[1]> = {}) =>
  (await postActivity(name, { vars: activityVars([worker]), key: worker, input: { key: "order-status/o-1", value: "{}" }, ...o })).res;

const scenarios: Scenario[] = [
  { op: "POST /v1/activities/{name}", status: 200, name: "kv.put", run: () => activity("kv.put") },
  { op: "POST /v1/activities/{name}", status: 400, name: "deadline passed", run: () => activity("kv.put", { deadline: Date.now() - 1 }) },
  { op: "POST /v1/activities/{name}", status: 401, name: "no token", run: () => activity("kv.put", { headers: { Authorization: "" } }) },
  { op: "POST /v1/activities/{name}", status: 404, name: "undeclared", run: () => activity("kv.nope") },
  { op: "POST /v1/activities/{name}", status: 413, name: "over 1 MiB", run: () => activity("kv.put", { input: { key: "k", value: "x".repeat(1024 * 1024) } }) },
  { op: "POST /v1/activities/{name}", status: 422, name: "invalid input", run: () => activity("kv.put", { input: { key: "k" } }) },
  { op: "POST /v1/activities/{name}", status: 500, name: "misconfigured", run: () => activity("kv.put", { vars: { ...activityVars([worker]), ...misconfigured } }) },
  ...codecScenarios("encode"),
  ...codecScenarios("decode"),
  { op: "GET /healthz", status: 200, name: "ok", run: () => call("/healthz") },
  { op: "GET /healthz", status: 500, name: "dev issuer in production", run: () => callWith(misconfigured, "/healthz") },

  { op: "POST /v1/workflows/{name}", status: 202, name: "started", run: () => start() },
  {
    op: "POST /v1/workflows/{name}",
    status: 200,
    name: "finished within the wait",
    run: () => {
      up.temporal.onStart = (r) => setTimeout(() => up.temporal.complete(r.workflowId, { ok: true }), 100);
      return start({ headers: { Prefer: "wait=3" } });
    },
  },
  { op: "POST /v1/workflows/{name}", status: 400, name: "malformed json", run: () => start({ body: undefined, raw: "{", headers: json }) },
  { op: "POST /v1/workflows/{name}", status: 401, name: "no token", run: () => start({ token: undefined }) },
  { op: "POST /v1/workflows/{name}", status: 403, name: "no role", run: async () => start({ token: await up.issuer.mint({ claims: { roles: [] } }) }) },
  { op: "POST /v1/workflows/{name}", status: 404, name: "unknown workflow", run: () => call("/v1/workflows/nope", { token: customer, body: {} }) },
  {
    op: "POST /v1/workflows/{name}",
    status: 409,
    name: "order id reused with another input",
    run: async () => {
      const input = order();
      const first = await read(await start({ body: input, headers: { "Idempotency-Key": "k" } }));
      up.temporal.runs.get(first.body.workflow_id)!.requestId = "other";
      return start({ body: { ...input, currency: "USD" }, headers: { "Idempotency-Key": "k" } });
    },
  },
  { op: "POST /v1/workflows/{name}", status: 413, name: "too large", run: () => start({ body: order({ order_id: "x".repeat(5000) }) }) },
  { op: "POST /v1/workflows/{name}", status: 415, name: "not json", run: () => start({ body: undefined, raw: "a=b", headers: { "Content-Type": "application/x-www-form-urlencoded" } }) },
  { op: "POST /v1/workflows/{name}", status: 422, name: "invalid input", run: () => start({ body: { order_id: 1 } }) },
  { op: "POST /v1/workflows/{name}", status: 500, name: "misconfigured", run: () => callWith(misconfigured, "/v1/workflows/order", { token: customer, body: order() }) },
  { op: "POST /v1/workflows/{name}", status: 502, name: "temporal down", run: () => (fault("network"), start()) },
  { op: "POST /v1/workflows/{name}", status: 503, name: "temporal busy", run: () => (fault({ status: 429 }), start()) },
  { op: "POST /v1/workflows/{name}", status: 504, name: "temporal slow", run: () => (fault("hang"), start()) },

  { op: "GET /v1/runs/{id}", status: 200, name: "running", run: () => getRun() },
  { op: "GET /v1/runs/{id}", status: 401, name: "no token", run: () => call(`/v1/runs/${runId}`) },
  { op: "GET /v1/runs/{id}", status: 403, name: "stranger", run: async () => getRun(await up.issuer.mint({ claims: { sub: "eve" } })) },
  { op: "GET /v1/runs/{id}", status: 404, name: "unknown", run: () => getRun(customer, "order-none") },
  { op: "GET /v1/runs/{id}", status: 500, name: "misconfigured", run: () => callWith(misconfigured, `/v1/runs/${runId}`, { token: customer }) },
  { op: "GET /v1/runs/{id}", status: 502, name: "temporal down", run: () => (fault({ status: 500 }), getRun()) },
  { op: "GET /v1/runs/{id}", status: 503, name: "temporal busy", run: () => (fault({ status: 429 }), getRun()) },
  { op: "GET /v1/runs/{id}", status: 504, name: "temporal slow", run: () => (fault("hang"), getRun()) },

  { op: "POST /v1/runs/{id}/signals/{name}", status: 200, name: "approval applied", run: () => sig() },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 202, name: "no worker took it in time", run: () => ((up.temporal.onUpdate = () => "admitted"), sig({ headers: { Prefer: "wait=1" } })) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 400, name: "malformed json", run: () => sig({ body: undefined, raw: "[", headers: json }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 401, name: "no token", run: () => sig({ token: undefined }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 403, name: "customer approving", run: () => sig({ token: customer }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 404, name: "undeclared signal", run: () => call(`/v1/runs/${runId}/signals/ship`, { method: "POST", token: approver, body: {} }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 409, name: "run finished", run: () => (up.temporal.complete(runId, {}), sig()) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 409, name: "already decided", run: () => ((up.temporal.onUpdate = () => ({ failure: "the order was already approved" })), sig()) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 413, name: "too large", run: () => sig({ body: { reason: "x".repeat(5000) } }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 415, name: "not json", run: () => sig({ body: undefined, raw: "yes", headers: { "Content-Type": "text/plain" } }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 422, name: "invalid payload", run: () => sig({ body: { reason: 5 } }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 500, name: "misconfigured", run: () => callWith(misconfigured, `/v1/runs/${runId}/signals/approve`, { token: approver, body: {} }) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 502, name: "temporal down", run: () => (fault({ status: 503 }), sig()) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 503, name: "temporal busy", run: () => (fault({ status: 429 }), sig()) },
  { op: "POST /v1/runs/{id}/signals/{name}", status: 504, name: "temporal slow", run: () => (fault("hang"), sig()) },

  { op: "POST /v1/runs/{id}/cancel", status: 202, name: "owner cancels", run: () => cancel() },
  { op: "POST /v1/runs/{id}/cancel", status: 401, name: "no token", run: () => call(`/v1/runs/${runId}/cancel`, { method: "POST" }) },
  { op: "POST /v1/runs/{id}/cancel", status: 403, name: "stranger", run: async () => cancel(await up.issuer.mint({ claims: { sub: "eve" } })) },
  { op: "POST /v1/runs/{id}/cancel", status: 404, name: "unknown", run: () => call(`/v1/runs/order-none/cancel`, { method: "POST", token: customer }) },
  { op: "POST /v1/runs/{id}/cancel", status: 409, name: "run finished", run: () => (up.temporal.complete(runId, {}), cancel()) },
  { op: "POST /v1/runs/{id}/cancel", status: 500, name: "misconfigured", run: () => callWith(misconfigured, `/v1/runs/${runId}/cancel`, { method: "POST", token: customer }) },
  { op: "POST /v1/runs/{id}/cancel", status: 502, name: "temporal down", run: () => (fault("network"), cancel()) },
  { op: "POST /v1/runs/{id}/cancel", status: 503, name: "temporal busy", run: () => (fault({ status: 429 }), cancel()) },
  { op: "POST /v1/runs/{id}/cancel", status: 504, name: "temporal slow", run: () => (fault("hang"), cancel()) },

  { op: "POST /v1/hooks/temporal", status: 200, name: "accepted", run: () => hook(JSON.stringify(completion(runId, runRun))) },
  { op: "POST /v1/hooks/temporal", status: 400, name: "malformed event", run: () => hook('{"type":"workflow.completed","data":{}}') },
  { op: "POST /v1/hooks/temporal", status: 401, name: "bad signature", run: () => hook(JSON.stringify(completion(runId, runRun)), { "webhook-signature": "v1,AAAA" }) },
  { op: "POST /v1/hooks/temporal", status: 413, name: "over 1 MiB", run: () => hook(JSON.stringify(completion(runId, runRun, "x".repeat(1024 * 1024)))) },
  { op: "POST /v1/hooks/temporal", status: 500, name: "misconfigured", run: () => callWith(misconfigured, "/v1/hooks/temporal", { method: "POST", body: {} }) },

  { op: "POST /v1/hooks/temporal-callback", status: 200, name: "accepted", run: async () => (up.temporal.complete(runId, {}), callback(runId, await runToken(runId))) },
  { op: "POST /v1/hooks/temporal-callback", status: 400, name: "no workflow id", run: async () => callWith(CALLBACKS, CALLBACK_PATH, { method: "POST", headers: { Authorization: `Bearer ${await runToken(runId)}` } }) },
  { op: "POST /v1/hooks/temporal-callback", status: 401, name: "another run's token", run: async () => callback(runId, await runToken("order-other")) },
  { op: "POST /v1/hooks/temporal-callback", status: 404, name: "callbacks off", run: () => call(`${CALLBACK_PATH}?wf=${runId}`, { method: "POST" }) },
  { op: "POST /v1/hooks/temporal-callback", status: 500, name: "misconfigured", run: () => callWith({ ...CALLBACKS, ...misconfigured }, `${CALLBACK_PATH}?wf=${runId}`, { method: "POST" }) },
];

function documented(op: Op) {
  const [method, path] = op.split(" ");
  return spec.paths[path][method.toLowerCase()];
}

describe("every documented status is returned by the code, as documented", () => {
  for (const s of scenarios) {
    it(`${s.op} → ${s.status} (${s.name})`, async () => {
      const res = await s.run();
      const text = await res.text();
      expect(res.status, text).toBe(s.status);
      const response = resolve(documented(s.op).responses[String(s.status)]);
      expect(response, `${s.op} does not document ${s.status}`).toBeDefined();
      if (s.status === 204) {
        expect(text).toBe("");
        expect(response.content).toBeUndefined();
        for (const h of Object.keys(response.headers ?? {})) expect(res.headers.get(h), h).not.toBeNull();
        return;
      }
      const type = res.headers.get("Content-Type")!;
      const media = response.content?.[type];
      expect(media, `${s.op} ${s.status} does not document ${type}`).toBeDefined();
      const result = validatorFor(media.schema).validate(JSON.parse(text));
      expect(result.errors, text).toEqual([]);
      for (const h of Object.keys(response.headers ?? {})) {
        if (["Location", "WWW-Authenticate", "Retry-After"].includes(h) && s.status !== 200) expect(res.headers.get(h), h).not.toBeNull();
      }
    });
  }

  it("has a scenario for every documented status of every operation", () => {
    for (const r of ROUTES) {
      const op = `${r.method} ${r.path}` as Op;
      const statuses = Object.keys(documented(op).responses).map(Number).sort();
      const covered = [...new Set(scenarios.filter((s) => s.op === op).map((s) => s.status))].sort();
      expect(covered, op).toEqual(statuses);
    }
  });
});
