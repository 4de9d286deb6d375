// Test doubles for everything the edge calls out to, installed as the global
// `fetch` (the Worker runs in the tests' isolate, so it uses them too):
// - FakeTemporal: the slice of Temporal's HTTP API the edge uses, with the real
//   server's semantics where they matter (409 on a duplicate id unless the
//   requestId matches, 404 on closed-run signals, close-event long-poll,
//   `Content-Type: *`), recording every call for assertions.
// - FakeIssuer: an OIDC issuer and a Cloudflare Access team with JWKS endpoints,
//   minting tokens with jose.
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from "jose";
import { vi } from "vitest";
import type { PayloadCodec } from "../src/codec";
import { ACCESS_AUD, ACCESS_TEAM, AUDIENCE, ISSUER, TEMPORAL_URL } from "./vars";

type Json = Record<string, any>;

export interface FakeRun {
  workflowId: string;
  runId: string;
  type: string;
  taskQueue: string;
  requestId: string;
  status: string;
  input: unknown;
  rawInput: Json;
  memo: Json;
  searchAttributes: Json;
  header: Json;
  identity: string;
  signals: { name: string; input: unknown; identity: string; requestId: string; header: Json }[];
  updates: { name: string; input: unknown; identity: string; updateId: string; header: Json }[];
  /** Every update call, including ones refused or not yet taken by a worker. */
  updateCalls: { name: string; updateId: string }[];
  completionCallbacks: Json[];
  cancelRequests: { identity: string; reason: string }[];
  closeEvent?: Json;
}

export interface Call {
  method: string;
  path: string;
  headers: Headers;
  body: Json | null;
}

export function decode(p: Json): unknown {
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(p.data), (c) => c.charCodeAt(0))));
}

function encode(v: unknown): Json {
  const bytes = new TextEncoder().encode(JSON.stringify(v));
  return { metadata: { encoding: btoa("json/plain") }, data: btoa(String.fromCharCode(...bytes)) };
}

function reply(status: number, body: Json): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "*" } });
}

export type Fault = { status: number } | "network" | "hang";

/**
 * How the fake workflow answers an update: its result, or what it refuses it with (a message, or the failure
 * as Temporal's JSON); "admitted" = no worker took it within Temporal's long poll; "closed" = the run closed
 * before it landed; "not-found" = Temporal answers 404 in other words (as it may for a run that closed
 * while the update was in flight).
 */
export type UpdateAnswer = { success: unknown } | { failure: string | Json } | "admitted" | "closed" | "not-found";

export class FakeTemporal {
  runs = new Map<string, FakeRun>();
  calls: Call[] = [];
  /** Fails the next calls (one per entry) instead of answering them. */
  faults: Fault[] = [];
  onStart?: (run: FakeRun) => void;
  /** The worker's codec: set, payloads are read as the worker would (decrypted first), and `rawInput` etc. keep what Temporal stored. */
  codec?: PayloadCodec;
  /** Answers updates (default: applied, echoing the payload as an approval). */
  onUpdate: (run: FakeRun, name: string, input: any) => UpdateAnswer = (_, name, input) => ({
    success: { state: name === "approve" ? "approved" : "rejected", approver: input.approver, reason: input.reason ?? null },
  });

  async handle(url: URL, init: RequestInit): Promise<Response> {
    const method = (init.method ?? "GET").toUpperCase();
    const headers = new Headers(init.headers);
    const text = typeof init.body === "string" ? init.body : "";
    const body = text ? (JSON.parse(text) as Json) : null;
    this.calls.push({ method, path: url.pathname + url.search, headers, body });
    const fault = this.faults.shift();
    if (fault === "network") throw new TypeError("Network connection lost.");
    if (fault === "hang") {
      return new Promise((_, reject) => init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
    }
    if (fault) return reply(fault.status, { code: 14, message: "upstream says no: secret internals" });

    const m = /^\/api\/v1\/namespaces\/default\/workflows\/([^/]+)(\/(signal|update)\/([^/]+)|\/(cancel|history))?$/.exec(url.pathname);
    if (!m) return reply(404, { code: 5, message: "no route" });
    const id = decodeURIComponent(m[1]);
    const run = this.runs.get(id);
    const action = m[3] ?? m[5];

    if (!action && method === "POST") {
      if (run) {
        // Like the real API's JSON, `started: false` is left out.
        if (run.requestId === body!.requestId) return reply(200, { runId: run.runId, status: run.status });
        return reply(409, {
          code: 6,
          message: `Workflow execution is already running. WorkflowId: ${id}`,
          details: [{ "@type": "type.googleapis.com/temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure", runId: run.runId }],
        });
      }
      const created: FakeRun = {
        workflowId: id,
        runId: crypto.randomUUID(),
        type: body!.workflowType.name,
        taskQueue: body!.taskQueue.name,
        requestId: body!.requestId,
        status: "WORKFLOW_EXECUTION_STATUS_RUNNING",
        input: await this.open(body!.input.payloads[0]),
        rawInput: body!.input,
        memo: body!.memo?.fields ?? {},
        searchAttributes: body!.searchAttributes?.indexedFields ?? {},
        header: body!.header?.fields ?? {},
        identity: body!.identity,
        signals: [],
        updates: [],
        updateCalls: [],
        completionCallbacks: body!.completionCallbacks ?? [],
        cancelRequests: [],
      };
      this.runs.set(id, created);
      this.onStart?.(created);
      return reply(200, { runId: created.runId, started: true, status: created.status });
    }
    if (!run) return reply(404, { code: 5, message: `workflow not found for ID: ${id}` });
    if (!action && method === "GET") {
      return reply(200, {
        workflowExecutionInfo: {
          execution: { workflowId: id, runId: run.runId },
          type: { name: run.type },
          status: run.status,
          startTime: "2026-01-01T00:00:00Z",
          memo: { fields: run.memo },
          searchAttributes: { indexedFields: run.searchAttributes },
        },
      });
    }
    if (action === "signal") {
      if (run.closeEvent) return reply(404, { code: 5, message: "workflow execution already completed" });
      run.signals.push({ name: decodeURIComponent(m[4]), input: await this.open(body!.input.payloads[0]), identity: body!.identity, requestId: body!.requestId, header: body!.header?.fields ?? {} });
      return reply(200, {});
    }
    if (action === "update") {
      if (run.closeEvent) return reply(404, { code: 5, message: "workflow execution already completed" });
      const r = body!.request;
      const input = (await this.open(r.input.args.payloads[0])) as any;
      run.updateCalls.push({ name: decodeURIComponent(m[4]), updateId: r.meta.updateId });
      const answer = this.onUpdate(run, decodeURIComponent(m[4]), input);
      const updateRef = { workflowExecution: { workflowId: id, runId: run.runId }, updateId: r.meta.updateId };
      if (answer === "closed") return reply(404, { code: 5, message: "workflow execution already completed" });
      if (answer === "not-found") return reply(404, { code: 5, message: `workflow not found for ID: ${id}` });
      if (answer === "admitted") {
        await new Promise((resolve) => setTimeout(resolve, 200)); // the real server holds it ~20 s
        return reply(200, { updateRef, stage: "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED" });
      }
      if ("failure" in answer) {
        const failure = typeof answer.failure === "string" ? { message: answer.failure, applicationFailureInfo: {} } : answer.failure;
        return reply(200, { updateRef, outcome: { failure }, stage: "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED" });
      }
      run.updates.push({ name: decodeURIComponent(m[4]), input, identity: r.meta.identity, updateId: r.meta.updateId, header: r.input.header?.fields ?? {} });
      return reply(200, { updateRef, outcome: { success: { payloads: [await this.seal(answer.success)] } }, stage: "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED" });
    }
    if (action === "cancel") {
      run.cancelRequests.push({ identity: body!.identity, reason: body!.reason });
      return reply(200, {});
    }
    if (action === "history") {
      // Like the real server, the close-event filter long-polls an open run even without waitNewEvent. It polls
      // rather than parks a promise another request would resolve: workerd does not run a promise's continuation
      // in another request's context (the waitUntil of a completion event, here).
      const until = Date.now() + 3000; // the real server answers empty after ~20 s
      while (!run.closeEvent && Date.now() < until && !init.signal?.aborted) await new Promise((r) => setTimeout(r, 20));
      if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
      return reply(200, run.closeEvent ? { history: { events: [run.closeEvent] } } : { history: {}, nextPageToken: "bW9yZQ==" });
    }
    return reply(400, { code: 3, message: "bad request" });
  }

  /** A payload as the worker reads it: decrypted with `codec` when it is set. */
  private async open(p: Json): Promise<unknown> {
    return decode(this.codec ? await this.codec.decode(p as any) : p);
  }

  /** A value as the worker hands it to Temporal: encrypted with `codec` when it is set. */
  async seal(v: unknown): Promise<Json> {
    return this.codec ? this.codec.encode(encode(v) as any) : encode(v);
  }

  private close(id: string, status: string, event: Json) {
    const run = this.runs.get(id)!;
    run.status = status;
    run.closeEvent = { eventId: "9", ...event };
  }

  complete(id: string, result: unknown) {
    this.close(id, "WORKFLOW_EXECUTION_STATUS_COMPLETED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
      workflowExecutionCompletedEventAttributes: { result: { payloads: [encode(result)] } },
    });
  }

  fail(id: string, message: string) {
    this.close(id, "WORKFLOW_EXECUTION_STATUS_FAILED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
      workflowExecutionFailedEventAttributes: { failure: { message } },
    });
  }

  terminate(id: string, reason: string) {
    this.close(id, "WORKFLOW_EXECUTION_STATUS_TERMINATED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
      workflowExecutionTerminatedEventAttributes: { reason },
    });
  }

  cancel(id: string) {
    this.close(id, "WORKFLOW_EXECUTION_STATUS_CANCELED", { eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED", workflowExecutionCanceledEventAttributes: {} });
  }

  timeOut(id: string) {
    this.close(id, "WORKFLOW_EXECUTION_STATUS_TIMED_OUT", { eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT", workflowExecutionTimedOutEventAttributes: {} });
  }

  /** Adds a run as if started elsewhere (not through the edge). */
  seed(run: Partial<FakeRun> & { workflowId: string; type: string }): FakeRun {
    const full: FakeRun = {
      runId: crypto.randomUUID(),
      taskQueue: "edgeflow",
      requestId: crypto.randomUUID(),
      status: "WORKFLOW_EXECUTION_STATUS_RUNNING",
      input: {},
      rawInput: {},
      memo: {},
      searchAttributes: {},
      header: {},
      identity: "elsewhere",
      signals: [],
      updates: [],
      updateCalls: [],
      completionCallbacks: [],
      cancelRequests: [],
      ...run,
    };
    this.runs.set(run.workflowId, full);
    return full;
  }

  startCalls(): Call[] {
    return this.calls.filter((c) => c.method === "POST" && /\/workflows\/[^/]+$/.test(c.path));
  }
}

export { encode };

interface KeyPair {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  publicJwk: Json;
}

async function keyPair(alg: "RS256" | "ES256", kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

export interface MintOptions {
  claims?: JWTPayload;
  issuer?: string;
  audience?: string | string[];
  /** Seconds from now; negative for the past. */
  expiresIn?: number;
  notBefore?: number;
  /** Seconds from now (default 0). */
  issuedAt?: number;
  key?: "rsa" | "ec" | "stranger" | "access";
  kid?: string;
}

export class FakeIssuer {
  private constructor(
    readonly rsa: KeyPair,
    readonly ec: KeyPair,
    /** Not published: signs forged tokens. */
    readonly stranger: KeyPair,
    readonly access: KeyPair,
  ) {}

  static async create(): Promise<FakeIssuer> {
    return new FakeIssuer(
      await keyPair("RS256", "rsa-1"),
      await keyPair("ES256", "ec-1"),
      await keyPair("RS256", "rsa-1"), // same kid as the real key: a forged signature
      await keyPair("RS256", "access-1"),
    );
  }

  jwks(): Json {
    return { keys: [this.rsa.publicJwk, this.ec.publicJwk] };
  }

  accessCerts(): Json {
    return { keys: [this.access.publicJwk], public_cert: { kid: this.access.kid, cert: "unused" } };
  }

  async mint(o: MintOptions = {}): Promise<string> {
    const k = this[o.key ?? "rsa"];
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ roles: ["customer"], email: "alice@example.com", ...o.claims })
      .setProtectedHeader({ alg: k.alg, kid: o.kid ?? k.kid, typ: "JWT" })
      .setIssuer(o.issuer ?? (o.key === "access" ? ACCESS_TEAM : ISSUER))
      .setAudience(o.audience ?? (o.key === "access" ? ACCESS_AUD : AUDIENCE))
      .setIssuedAt(now + (o.issuedAt ?? 0))
      .setExpirationTime(now + (o.expiresIn ?? 600));
    if (o.claims?.sub === undefined) jwt.setSubject("alice");
    if (o.notBefore !== undefined) jwt.setNotBefore(now + o.notBefore);
    return jwt.sign(k.privateKey);
  }
}

export interface Upstreams {
  temporal: FakeTemporal;
  issuer: FakeIssuer;
  unexpected: string[];
}

/** A key set URL whose server is down. */
export const UNREACHABLE_JWKS = `${ISSUER}/unreachable/jwks.json`;

let sharedIssuer: Promise<FakeIssuer> | undefined;

/** Installs fresh fakes as the global fetch; the issuer's keys are shared by a test file (like a real IdP's). */
export async function installUpstreams(): Promise<Upstreams> {
  sharedIssuer ??= FakeIssuer.create();
  const up: Upstreams = { temporal: new FakeTemporal(), issuer: await sharedIssuer, unexpected: [] };
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    if (url.href === UNREACHABLE_JWKS) throw new TypeError("connect ECONNREFUSED");
    if (url.href === `${ISSUER}/.well-known/jwks.json`) {
      return new Response(JSON.stringify(up.issuer.jwks()), { headers: { "Content-Type": "application/json" } });
    }
    if (url.href === `${ACCESS_TEAM}/cdn-cgi/access/certs`) {
      return new Response(JSON.stringify(up.issuer.accessCerts()), { headers: { "Content-Type": "application/json" } });
    }
    if (url.href.startsWith(TEMPORAL_URL)) return up.temporal.handle(url, init);
    up.unexpected.push(url.href);
    throw new TypeError(`unexpected outbound fetch to ${url.href}`);
  });
  return up;
}
