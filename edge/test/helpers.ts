// Shared helpers: calling the Worker as a client would (through SELF, the real
// entry point with its KV and Durable Object bindings) and signing webhooks the
// way the Rust worker does.
import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { handle, type Deps } from "../src/app";
import type { CompletionBody } from "../src/webhook";
import { WEBHOOK_SECRET_NEW } from "./vars";

export const BASE = "https://edge.test";

export interface CallOptions {
  method?: string;
  token?: string;
  body?: unknown;
  /** Raw body text (sent as is). */
  raw?: BodyInit;
  headers?: Record<string, string>;
}

export async function call(path: string, o: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  let body: BodyInit | undefined = o.raw;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers["Content-Type"] ??= "application/json";
  }
  return SELF.fetch(`${BASE}${path}`, { method: o.method ?? (body === undefined ? "GET" : "POST"), headers, body });
}

/** Response body as JSON, with the status for one-line assertions. */
export async function read(res: Response): Promise<{ status: number; body: any; headers: Headers }> {
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** A valid order; `amount_cents` follows the items unless given. */
export function order(overrides: Record<string, unknown> = {}) {
  const items = (overrides.items as { quantity: number; unit_price_cents: number }[] | undefined) ?? [{ sku: "SKU-1", quantity: 2, unit_price_cents: 1250 }];
  return {
    order_id: `o-${crypto.randomUUID().slice(0, 8)}`,
    customer_email: "alice@example.com",
    items,
    amount_cents: items.reduce((sum, i) => sum + i.quantity * i.unit_price_cents, 0),
    currency: "EUR",
    ...overrides,
  };
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

export async function sign(secret: string, id: string, ts: number, body: string): Promise<string> {
  const key = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `v1,${b64(new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(`${id}.${ts}.${body}`))))}`;
}

/** A completion event's body as the worker sends it (test/contracts.test.ts checks it against the exported schema). */
export function completion(workflowId: string, runId: string, result: unknown = { charged_cents: 2500 }, type: CompletionBody["type"] = "workflow.completed"): CompletionBody {
  const failed = type === "workflow.failed";
  return {
    type,
    timestamp: new Date().toISOString(),
    data: {
      workflow_id: workflowId,
      run_id: runId,
      workflow_type: "order",
      status: failed ? "failed" : "completed",
      result: failed ? null : result,
      error: failed ? { message: "payment declined" } : null,
    },
  };
}

export interface HookOptions {
  secret?: string;
  id?: string;
  /** Unix seconds; defaults to now. */
  ts?: number;
  /** Replaces the computed signature header. */
  signature?: string;
  headers?: Record<string, string>;
}

export async function postHook(event: unknown, o: HookOptions = {}): Promise<Response> {
  const body = typeof event === "string" ? event : JSON.stringify(event);
  const id = o.id ?? `msg_${crypto.randomUUID()}`;
  const ts = o.ts ?? Math.floor(Date.now() / 1000);
  const signature = o.signature ?? (await sign(o.secret ?? WEBHOOK_SECRET_NEW, id, ts, body));
  return SELF.fetch(`${BASE}/v1/hooks/temporal`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": signature, ...o.headers },
    body,
  });
}

/** Calls the Worker's handler directly with some variables overridden (a differently configured deployment). */
export async function callWith(vars: Record<string, string>, path: string, o: CallOptions = {}, deps?: Deps): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  let body: BodyInit | undefined = o.raw;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers["Content-Type"] ??= "application/json";
  }
  const request = new Request(`${BASE}${path}`, { method: o.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  const ctx = createExecutionContext();
  const res = await handle(request, { ...env, ...vars } as Env, ctx, deps);
  await waitOnExecutionContext(ctx);
  return res;
}
