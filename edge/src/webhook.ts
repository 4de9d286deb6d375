// Receiving side of the worker's completion webhook (Standard Webhooks):
// signature checked in constant time against every configured secret (so
// secrets can rotate), timestamps more than 5 minutes off refused, and the
// event body checked. A verified event is only a trigger: it names a run that
// says it is finishing, and the edge asks Temporal how that run ended
// (runs.ts `settle`); what the event claims about the outcome is never used.
// Replay of a `webhook-id` is caught by the run's Durable Object (waiter.ts).
import { problem } from "./problem";
import { b64decode } from "./temporal";

export const TOLERANCE_SECONDS = 300;
export const MAX_WEBHOOK_BYTES = 1024 * 1024;

/**
 * The body of a completion event as the worker sends it: Rust's
 * `webhook::CompletionEvent`, exported to schemas/events/workflow.completion.schema.json;
 * test/contracts.test.ts fails when this type and the schema differ.
 */
export interface CompletionBody {
  type: "workflow.completed" | "workflow.failed";
  /** When the run scheduled the notification (RFC 3339), the same on every retry. */
  timestamp: string;
  data: {
    /** The run the event names (the worker fills it from the sending activity's own run). */
    workflow_id: string;
    run_id: string;
    workflow_type: string;
    status: "completed" | "failed";
    /** Not read: the edge asks Temporal how the run ended (runs.ts `settle`). */
    result?: unknown;
    error?: { message: string } | null;
  };
}

/** A verified completion event, as the edge acts on it. */
export interface CompletionEvent {
  id: string;
  type: CompletionBody["type"];
  workflowId: string;
}

function rejected(code: string) {
  return problem("webhook-rejected", { code });
}

/**
 * Verifies `webhook-signature` over `id.timestamp.body`; returns the webhook id.
 * `crypto.subtle.verify` compares HMACs in constant time, and every secret is
 * tried against every `v1,` signature so any secret of a rotation is accepted.
 */
export async function verifyWebhook(headers: Headers, body: Uint8Array, keys: Uint8Array[], nowSeconds = Date.now() / 1000): Promise<string> {
  const id = headers.get("webhook-id");
  const ts = headers.get("webhook-timestamp");
  const sigHeader = headers.get("webhook-signature");
  if (!id || !ts || !sigHeader) throw rejected("signature_missing");
  if (id.length > 256) throw rejected("signature_invalid");
  if (!/^[0-9]{1,12}$/.test(ts)) throw rejected("timestamp_invalid");
  if (Math.abs(nowSeconds - Number(ts)) > TOLERANCE_SECONDS) throw rejected("timestamp_out_of_window");
  if (!keys.length) throw rejected("signature_invalid");

  const signatures: Uint8Array[] = [];
  for (const part of sigHeader.split(" ")) {
    const [version, value] = part.split(",", 2);
    if (version !== "v1" || !value) continue;
    try {
      signatures.push(b64decode(value));
    } catch {
      /* not base64: cannot match */
    }
  }
  const prefix = new TextEncoder().encode(`${id}.${ts}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  for (const key of keys) {
    const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    for (const sig of signatures) {
      if (await crypto.subtle.verify("HMAC", k, sig, signed)) return id;
    }
  }
  throw rejected("signature_invalid");
}

const COMPLETION_TYPES: readonly string[] = ["workflow.completed", "workflow.failed"] satisfies CompletionBody["type"][];

/**
 * Parses a verified body; null for event types this edge does not act on. Throws 400 when
 * malformed. Only the fields the edge uses are checked: the rest of the body is not read.
 */
export function parseCompletion(id: string, body: Uint8Array): CompletionEvent | null {
  let ev: any;
  try {
    ev = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw problem("malformed-json");
  }
  if (!ev || typeof ev !== "object" || typeof ev.type !== "string") throw problem("invalid-request", { detail: "missing event type" });
  if (!COMPLETION_TYPES.includes(ev.type)) return null;
  const d = ev.data as Partial<CompletionBody["data"]> | null;
  const str = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 1000;
  if (!d || typeof d !== "object" || !str(d.workflow_id) || !str(d.run_id) || !str(d.workflow_type)) {
    throw problem("invalid-request", { detail: "data.workflow_id, data.run_id and data.workflow_type are required" });
  }
  return { id, type: ev.type, workflowId: d.workflow_id };
}
