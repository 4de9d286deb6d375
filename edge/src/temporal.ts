// Fetch-only client for Temporal's HTTP API (Workers cannot speak gRPC), or for
// `edgeflow gateway`, which serves the same paths and JSON. It owns
// the wire format: payloads go out and come back in full form (the API's JSON
// shorthand turns empty arrays into null), responses are decoded from bytes
// (Temporal answers `Content-Type: *`), and failures become `TemporalError`s of a
// few kinds that problem.ts maps to responses. With a codec (codec.ts), every payload
// it hands Temporal is encrypted and every one it reads is decrypted here, so the rest of the
// edge sees plaintext and Temporal (and the gateway) only ciphertext.
import { CodecError, openPayload, type PayloadCodec } from "./codec";

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export interface Payload {
  metadata: Record<string, string>;
  data?: string;
}

const JSON_PLAIN = btoa("json/plain");
const NO_SHORTHAND = "application/json+no-payload-shorthand";

export function encodePayload(value: unknown): Payload {
  return { metadata: { encoding: JSON_PLAIN }, data: b64encode(new TextEncoder().encode(JSON.stringify(value ?? null))) };
}

export function encodePayloads(value: unknown): { payloads: Payload[] } {
  return { payloads: [encodePayload(value)] };
}

/** Decodes a json/plain (or binary/null) payload; tolerates the shorthand form. */
export function decodePayload(p: unknown): unknown {
  if (!p || typeof p !== "object" || !("metadata" in p)) return p ?? null;
  const payload = p as Payload;
  const encoding = payload.metadata?.encoding ? safeAtob(payload.metadata.encoding) : "";
  if (encoding === "binary/null" || payload.data === undefined) return null;
  const text = new TextDecoder().decode(b64decode(payload.data));
  if (encoding === "json/plain" || encoding === "") return JSON.parse(text);
  return text;
}

export type TemporalErrorKind = "not-found" | "run-closed" | "already-started" | "rejected" | "unavailable" | "busy" | "timeout";

export class TemporalError extends Error {
  constructor(
    readonly kind: TemporalErrorKind,
    message: string,
    readonly status?: number,
    readonly workflowId?: string,
    readonly runId?: string,
  ) {
    super(message);
    this.name = "TemporalError";
  }
}

/** Run states as the edge reports them. */
export type RunStatus =
  | "running"
  | "completed"
  | "failed"
  | "canceled"
  | "terminated"
  | "timed_out"
  | "continued_as_new"
  | "paused"
  | "unknown";

export const TERMINAL: ReadonlySet<RunStatus> = new Set(["completed", "failed", "canceled", "terminated", "timed_out"]);

export interface Execution {
  workflowId: string;
  runId: string;
  workflowType: string;
  status: RunStatus;
  startTime?: string;
  closeTime?: string;
  memo: Record<string, unknown>;
}

/** How a run ended, as read from its close event (or reported by the worker's webhook). */
export interface Outcome {
  status: RunStatus;
  runId?: string;
  result: unknown;
  error: { message: string } | null;
}

/** A Nexus completion callback: Temporal POSTs to `url` with `header` once the run closes. */
export interface CompletionCallback {
  url: string;
  header: Record<string, string>;
}

/**
 * A Temporal failure as the edge reads it: the message, and for an application failure its
 * type and its details (each payload decoded); its cause likewise.
 */
export interface TemporalFailure {
  message: string;
  /** `applicationFailureInfo.type`; null for other kinds of failure. */
  type: string | null;
  details: unknown[];
  cause: TemporalFailure | null;
}

/** How an update ended: `success` is its result; `failure` what the workflow refused it with. */
export type UpdateOutcome = { success: unknown } | { failure: TemporalFailure };

// Causes followed at most: a chain is short, a body is not to be trusted to be.
const MAX_CAUSES = 8;

/** Decrypts (when encrypted) and decodes one payload; a payload that cannot be decrypted throws `CodecError`. */
export type PayloadReader = (p: unknown) => Promise<unknown>;

/** Reads payloads with `codec`, or without keys (plaintext only). */
export function payloadReader(codec?: PayloadCodec): PayloadReader {
  return async (p) => (p && typeof p === "object" && "metadata" in p ? decodePayload(await openPayload(codec, p as Payload)) : decodePayload(p));
}

/**
 * Reads a failure (`temporal.api.failure.v1.Failure` as JSON), its details in full or shorthand
 * form. A failure whose message was moved into `encodedAttributes` (a worker with encryption on
 * writes "Encoded failure" as the message) gets its message back from there.
 */
export async function readFailure(f: unknown, read: PayloadReader = payloadReader(), depth = 0): Promise<TemporalFailure> {
  const o = (f && typeof f === "object" ? f : {}) as Record<string, any>;
  const info = o.applicationFailureInfo as Record<string, any> | undefined;
  const details = info?.details;
  const payloads: unknown[] = Array.isArray(details) ? details : Array.isArray(details?.payloads) ? details.payloads : [];
  return {
    message: await failureMessage(o, read),
    type: info ? String(info.type ?? "") : null,
    details: await Promise.all(payloads.map((p) => read(p).catch(undecodable))),
    cause: o.cause && depth < MAX_CAUSES ? await readFailure(o.cause, read, depth + 1) : null,
  };
}

/** The message of a failure, from its encoded attributes (`{"message", "stack_trace"}`) when it has them. */
async function failureMessage(o: Record<string, any>, read: PayloadReader): Promise<string> {
  if (o.encodedAttributes && typeof o.encodedAttributes === "object") {
    const attributes = (await read(o.encodedAttributes).catch(undecodable)) as Record<string, unknown> | undefined;
    if (attributes && typeof attributes.message === "string") return attributes.message;
  }
  return String(o.message ?? "");
}

/** A payload that is not JSON reads as undefined; one that cannot be decrypted is an error. */
function undecodable(e: unknown): undefined {
  if (e instanceof CodecError) throw e;
  return undefined;
}

export interface StartRequest {
  workflowId: string;
  workflowType: string;
  taskQueue: string;
  input: unknown;
  requestId: string;
  identity: string;
  memo: Record<string, unknown>;
  searchAttributes: Record<string, unknown>;
  header: Record<string, unknown>;
  completionCallbacks: CompletionCallback[];
}

export interface CallOptions {
  identity: string;
  requestId: string;
  header?: Record<string, unknown>;
}

export interface TemporalClientOptions {
  baseUrl: string;
  namespace: string;
  /** The `Authorization` value for one call (an API key, or a fresh gateway token bound to the call), if any. */
  authorization: (req: { method: string; url: string; body?: string }) => Promise<string | undefined>;
  timeoutMs: number;
  fetch: FetchFn;
  /** Encrypts what goes to Temporal and decrypts what comes back; absent, payloads go out in plaintext. */
  codec?: () => Promise<PayloadCodec | undefined>;
}

export class TemporalClient {
  constructor(private readonly opts: TemporalClientOptions) {}

  private async codec(): Promise<PayloadCodec | undefined> {
    return this.opts.codec?.();
  }

  /** One value as the payload Temporal gets: JSON, encrypted when a codec is set. */
  private async out(value: unknown): Promise<Payload> {
    const codec = await this.codec();
    const p = encodePayload(value);
    return codec ? codec.encode(p) : p;
  }

  private async outAll(o: Record<string, unknown>): Promise<Record<string, Payload>> {
    return Object.fromEntries(await Promise.all(Object.entries(o).map(async ([k, v]) => [k, await this.out(v)] as const)));
  }

  private async reader(): Promise<PayloadReader> {
    return payloadReader(await this.codec());
  }

  /**
   * Starts a run; a duplicate id (running or closed) throws `already-started`
   * with the existing run id. (A repeated `requestId` would be answered with the
   * run it started, exactly as the first time, `started: true` included: the
   * answer cannot tell a replay, so callers send a new request id every time.)
   */
  async start(req: StartRequest): Promise<{ runId: string; status: RunStatus }> {
    const body = {
      workflowId: req.workflowId,
      workflowType: { name: req.workflowType },
      taskQueue: { name: req.taskQueue },
      input: { payloads: [await this.out(req.input)] },
      identity: req.identity,
      requestId: req.requestId,
      // A closed run keeps its id: a replayed Idempotency-Key must never start a second run.
      workflowIdReusePolicy: "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
      workflowIdConflictPolicy: "WORKFLOW_ID_CONFLICT_POLICY_FAIL",
      memo: { fields: await this.outAll(req.memo) },
      searchAttributes: { indexedFields: mapValues(req.searchAttributes, encodePayload) },
      header: { fields: mapValues(req.header, encodePayload) },
      ...(req.completionCallbacks.length ? { completionCallbacks: req.completionCallbacks.map((nexus) => ({ nexus })) } : {}),
    };
    const res = await this.call("POST", this.wf(req.workflowId), body, { workflowId: req.workflowId });
    return { runId: String(res.runId ?? ""), status: res.status ? mapStatus(res.status) : "running" };
  }

  async describe(workflowId: string): Promise<Execution> {
    const res = await this.call("GET", this.wf(workflowId));
    const info = (res.workflowExecutionInfo ?? {}) as Record<string, any>;
    const memo: Record<string, unknown> = {};
    const read = await this.reader();
    for (const [k, v] of Object.entries((info.memo?.fields ?? {}) as Record<string, unknown>)) {
      memo[k] = await read(v).catch((e) => undecodable(e) ?? null);
    }
    return {
      workflowId: info.execution?.workflowId ?? workflowId,
      runId: info.execution?.runId ?? "",
      workflowType: info.type?.name ?? "",
      status: mapStatus(info.status),
      startTime: info.startTime,
      closeTime: info.closeTime,
      memo,
    };
  }

  async signal(workflowId: string, name: string, input: unknown, o: CallOptions): Promise<void> {
    await this.call("POST", `${this.wf(workflowId)}/signal/${encodeURIComponent(name)}`, {
      input: { payloads: [await this.out(input)] },
      identity: o.identity,
      requestId: o.requestId,
      header: { fields: mapValues(o.header ?? {}, encodePayload) },
    });
  }

  /**
   * Sends an update and waits for its outcome. Temporal holds the call at most
   * ~20 s (its long-poll expiry) and then answers with the stage reached and no
   * outcome: null here. Calling again with the same `updateId` picks up the
   * same update (never a second one).
   */
  async update(
    workflowId: string,
    name: string,
    input: unknown,
    o: CallOptions & { updateId: string; timeoutMs: number },
  ): Promise<UpdateOutcome | null> {
    const res = await this.call(
      "POST",
      `${this.wf(workflowId)}/update/${encodeURIComponent(name)}`,
      {
        workflowExecution: { workflowId },
        request: {
          meta: { updateId: o.updateId, identity: o.identity },
          input: { name, args: { payloads: [await this.out(input)] }, header: { fields: mapValues(o.header ?? {}, encodePayload) } },
        },
        waitPolicy: { lifecycleStage: "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED" },
      },
      { timeoutMs: o.timeoutMs },
    );
    const outcome = res.outcome as Record<string, any> | undefined;
    if (!outcome) return null;
    const read = await this.reader();
    if (outcome.failure) return { failure: await readFailure(outcome.failure, read) };
    const payloads = outcome.success?.payloads ?? [];
    return { success: payloads.length ? await read(payloads[0]) : null };
  }

  async requestCancel(workflowId: string, o: CallOptions & { reason: string }): Promise<void> {
    await this.call("POST", `${this.wf(workflowId)}/cancel`, {
      identity: o.identity,
      requestId: o.requestId,
      reason: o.reason,
    });
  }

  /**
   * Reads the close event of the current run. Temporal holds this request until
   * the run closes or ~20 s pass (then answers with only a page token) whether or
   * not `waitNewEvent` is set, so without `wait` call it only for a closed run.
   */
  async closeEvent(
    workflowId: string,
    o: { wait: boolean; pageToken?: string; signal?: AbortSignal; timeoutMs?: number } = { wait: false },
  ): Promise<{ outcome: Outcome | null; nextPageToken?: string }> {
    const q = new URLSearchParams({ historyEventFilterType: "HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT" });
    if (o.wait) q.set("waitNewEvent", "true");
    if (o.pageToken) q.set("nextPageToken", o.pageToken);
    const res = await this.call("GET", `${this.wf(workflowId)}/history?${q}`, undefined, {
      signal: o.signal,
      timeoutMs: o.timeoutMs,
    });
    const events = ((res.history as any)?.events ?? []) as Record<string, any>[];
    const last = events[events.length - 1];
    return { outcome: last ? await outcomeFromEvent(last, await this.reader()) : null, nextPageToken: (res.nextPageToken as string) || undefined };
  }

  /** Long-polls the close event until `deadline` (epoch ms); null when the run is still open then. */
  async waitForClose(workflowId: string, deadline: number): Promise<Outcome | null> {
    let pageToken: string | undefined;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      try {
        const { outcome, nextPageToken } = await this.closeEvent(workflowId, { wait: true, pageToken, timeoutMs: left });
        if (outcome) return outcome;
        pageToken = nextPageToken;
      } catch (e) {
        if (e instanceof TemporalError && e.kind === "timeout") return null;
        throw e;
      }
    }
  }

  private wf(workflowId: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    o: { workflowId?: string; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Record<string, any>> {
    const headers: Record<string, string> = { Accept: NO_SHORTHAND };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const url = this.opts.baseUrl + path;
    const text = body === undefined ? undefined : JSON.stringify(body);
    const authorization = await this.opts.authorization({ method, url, body: text });
    if (authorization) headers.Authorization = authorization;
    const controller = new AbortController();
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs;
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const onAbort = () => controller.abort();
    o.signal?.addEventListener("abort", onAbort);
    let res: Response;
    let bytes: ArrayBuffer;
    try {
      res = await this.opts.fetch(url, {
        method,
        headers,
        body: text,
        signal: controller.signal,
      });
      bytes = await res.arrayBuffer();
    } catch (e) {
      if (controller.signal.aborted) throw new TemporalError("timeout", `${method} ${path}: no answer within ${timeoutMs} ms`);
      throw new TemporalError("unavailable", `${method} ${path}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
    }
    let json: Record<string, any> = {};
    try {
      const text = new TextDecoder().decode(bytes);
      json = text ? JSON.parse(text) : {};
    } catch {
      if (res.ok) throw new TemporalError("unavailable", `${method} ${path}: answer is not JSON`, res.status);
    }
    if (res.ok) return json;
    const message = `${method} ${path}: ${res.status} ${String(json.message ?? "").slice(0, 300)}`;
    if (res.status === 409 || json.code === 6) {
      const detail = (json.details ?? []).find((d: any) => typeof d?.runId === "string");
      throw new TemporalError("already-started", message, res.status, o.workflowId, detail?.runId);
    }
    // Signals and updates to a closed run; describe answers 404 only for an unknown id.
    if (res.status === 404 && /already completed/.test(String(json.message))) throw new TemporalError("run-closed", message, res.status);
    if (res.status === 404) throw new TemporalError("not-found", message, res.status);
    if (res.status === 429) throw new TemporalError("busy", message, res.status);
    if (res.status === 504) throw new TemporalError("timeout", message, res.status);
    if (res.status >= 500) throw new TemporalError("unavailable", message, res.status);
    throw new TemporalError("rejected", message, res.status);
  }
}

async function outcomeFromEvent(ev: Record<string, any>, read: PayloadReader): Promise<Outcome | null> {
  switch (ev.eventType) {
    case "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED": {
      const payloads = ev.workflowExecutionCompletedEventAttributes?.result?.payloads ?? [];
      return { status: "completed", result: payloads.length ? await read(payloads[0]) : null, error: null };
    }
    case "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED": {
      const failure = ev.workflowExecutionFailedEventAttributes?.failure;
      return {
        status: "failed",
        result: null,
        error: { message: (failure && (await readFailure(failure, read)).message) || "workflow failed" },
      };
    }
    case "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED":
      return { status: "canceled", result: null, error: { message: "workflow canceled" } };
    case "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED":
      return {
        status: "terminated",
        result: null,
        error: { message: String(ev.workflowExecutionTerminatedEventAttributes?.reason || "workflow terminated") },
      };
    case "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT":
      return { status: "timed_out", result: null, error: { message: "workflow timed out" } };
    default:
      // Continued-as-new: the workflow id lives on in a new run, so it is not finished.
      return null;
  }
}

function mapStatus(s: unknown): RunStatus {
  const known: Record<string, RunStatus> = {
    WORKFLOW_EXECUTION_STATUS_RUNNING: "running",
    WORKFLOW_EXECUTION_STATUS_COMPLETED: "completed",
    WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WORKFLOW_EXECUTION_STATUS_CANCELED: "canceled",
    WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated",
    WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
    WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed_out",
    WORKFLOW_EXECUTION_STATUS_PAUSED: "paused",
  };
  return known[String(s)] ?? "unknown";
}

function mapValues<T>(o: Record<string, unknown>, f: (v: unknown) => T): Record<string, T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

function safeAtob(s: string): string {
  try {
    return atob(s);
  } catch {
    return "";
  }
}

export function b64encode(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function b64decode(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
