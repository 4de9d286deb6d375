// d1.execute: one of a fixed set of named SQL statements on the ACTIVITY_DB D1 database, like
// the worker's named SQL (config/sql): a workflow names the statement and passes its
// parameters, never SQL. D1 rather than a Queue send because the answer is the outcome (rows
// written), so Temporal's history records whether the write happened; and a statement can be
// made idempotent by the attempt's Idempotency-Key (`ON CONFLICT DO NOTHING`), which a Queue
// send cannot (a retried send is a second message for the consumer to drop).
import { ActivityError, defineActivity, type JsonSchema } from "./activity";

interface NamedStatement {
  /** Parameters. Bound as `?1` = the activity's idempotency key, then these in order, then the time (ISO 8601). */
  params: Record<string, JsonSchema>;
  sql: string;
}

/**
 * The statements d1.execute runs. `order_event.record` keeps a customer-facing timeline of an
 * order (one row per workflow step, a retried attempt writes none).
 */
export const STATEMENTS: Record<string, NamedStatement> = {
  "order_event.record": {
    params: {
      order_id: { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9._:-]+$" },
      status: { type: "string", minLength: 1, maxLength: 64 },
    },
    sql: "INSERT INTO order_events (idempotency_key, order_id, status, recorded_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (idempotency_key) DO NOTHING",
  },
};

/** The tables the statements use, created once per isolate (idempotent DDL). */
const SETUP = [
  "CREATE TABLE IF NOT EXISTS order_events (idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL, recorded_at TEXT NOT NULL)",
  "CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (order_id, recorded_at)",
];

const ready = new WeakMap<D1Database, Promise<unknown>>();

function setUp(db: D1Database): Promise<unknown> {
  let p = ready.get(db);
  if (!p) {
    p = db.batch(SETUP.map((s) => db.prepare(s))).catch((e) => {
      ready.delete(db);
      throw e;
    });
    ready.set(db, p);
  }
  return p;
}

export interface D1ExecuteInput {
  statement: string;
  params: Record<string, string | number | boolean | null>;
}

export const d1Execute = defineActivity<D1ExecuteInput, { statement: string; rows_written: number }>({
  name: "d1.execute",
  description: "Runs a named SQL statement on ACTIVITY_DB, idempotent per activity (a retry writes nothing twice).",
  input: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "D1ExecuteInput",
    type: "object",
    properties: {
      statement: { enum: Object.keys(STATEMENTS) },
      params: { type: "object" },
    },
    required: ["statement", "params"],
    additionalProperties: false,
    allOf: Object.entries(STATEMENTS).map(([name, s]) => ({
      if: { properties: { statement: { const: name } } },
      then: {
        properties: {
          params: { type: "object", properties: s.params, required: Object.keys(s.params), additionalProperties: false },
        },
      },
    })),
  },
  output: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "D1ExecuteOutput",
    type: "object",
    properties: {
      statement: { type: "string", maxLength: 100 },
      rows_written: { type: "integer", minimum: 0, maximum: 1000000 },
    },
    required: ["statement", "rows_written"],
    additionalProperties: false,
  },
  async handler(input, ctx) {
    const s = STATEMENTS[input.statement];
    // The schema admits only known names; this guards a caller that skipped it.
    if (!s) throw new ActivityError("UnknownStatement", `no statement named ${input.statement}`, { nonRetryable: true });
    const db = ctx.env.ACTIVITY_DB;
    await setUp(db);
    const values = [ctx.info.idempotencyKey, ...Object.keys(s.params).map((k) => input.params[k] ?? null), new Date().toISOString()];
    const result = await db.prepare(s.sql).bind(...values).run();
    const rows = result.meta.changes ?? 0;
    ctx.log.info("d1.execute", { statement: input.statement, rows_written: rows });
    return { statement: input.statement, rows_written: rows };
  },
});
