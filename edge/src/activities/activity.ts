// What an edge activity is: a name (`kv.put`; Temporal's activity type is `edge.` + name), an
// input and an output JSON Schema (draft 2020-12, closed objects, bounded sizes: the manifest
// the worker registers from is exported from these, scripts/export-activities.mjs), and a
// handler `(input, ctx)`. The handler sees only the activity bindings (`ctx.env`), never the
// edge's own records; it fails an attempt by throwing: an `ActivityError` with its type name
// (non-retryable when it says so), anything else retryable with type `Error`.

/** The bindings an activity may use: nothing else of the Worker's `Env` reaches a handler. */
export interface ActivityEnv {
  /** Workers KV for cache hints (kv.put, kv.delete): a namespace apart from the edge's RUN_STATUS. */
  ACTIVITY_KV: KVNamespace;
  /** D1 for d1.execute's named statements. */
  ACTIVITY_DB: D1Database;
}

/** Picks the activity bindings out of the Worker's environment. */
export function activityEnv(env: Env): ActivityEnv {
  return { ACTIVITY_KV: env.ACTIVITY_KV, ACTIVITY_DB: env.ACTIVITY_DB };
}

/** Which attempt of which activity of which run this is (from the request's bound headers). */
export interface ActivityInfo {
  /** The activity's name without the `edge.` prefix. */
  name: string;
  workflowId: string;
  runId: string;
  activityId: string;
  /** 1-based. */
  attempt: number;
  /** Unix epoch milliseconds at which the attempt times out. */
  deadline: number;
  /** `<workflow id>/<activity id>`: the same for every attempt, unique across runs. */
  idempotencyKey: string;
}

/** JSON log lines carrying the trace id and the activity's ids. */
export interface ActivityLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ActivityContext {
  env: ActivityEnv;
  info: ActivityInfo;
  /** Aborted at the attempt's deadline, or when the worker drops the request (cancellation). */
  signal: AbortSignal;
  log: ActivityLog;
}

/** A JSON Schema as written in an activity's file (exported verbatim to schemas/edge-activities/). */
export type JsonSchema = Record<string, unknown>;

export interface EdgeActivity<I = any, O = any> {
  name: string;
  /** One line for the manifest reader: what it does and why it runs at the edge. */
  description: string;
  input: JsonSchema;
  output: JsonSchema;
  /** The longest an attempt may take, when less than the worker's own cap. */
  maxAttemptSecs?: number;
  handler(input: I, ctx: ActivityContext): Promise<O>;
}

/** Typed identity: lets each file declare its input and output types next to the schemas. */
export function defineActivity<I, O>(a: EdgeActivity<I, O>): EdgeActivity<I, O> {
  return a;
}

/**
 * Fails the attempt with a type name the workflow can match on. `nonRetryable` makes Temporal
 * stop retrying (a bad key, a refused write); without it the retry policy applies.
 */
export class ActivityError extends Error {
  readonly nonRetryable: boolean;

  constructor(
    readonly type: string,
    message: string,
    options: { nonRetryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ActivityError";
    this.nonRetryable = options.nonRetryable ?? false;
  }
}

/** Type names the edge itself fails attempts with (a handler may not claim them). */
export const INVALID_INPUT = "InvalidInput";
export const INVALID_OUTPUT = "InvalidOutput";
