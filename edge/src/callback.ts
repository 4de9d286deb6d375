// Temporal's completion callbacks: the server POSTs to the URL attached at
// start once the run has closed, in every terminal state and for any workflow
// type. The URL carries the workflow id (`?wf=`), and the request carries a
// per-run token: HMAC-SHA256 of the namespace and workflow id under an edge
// secret. Temporal stores the callback's headers in the run's history in clear
// text, so the token is worth only what it opens: telling the edge that this one
// run has closed, which the edge then checks with Temporal (runs.ts `settle`).
// Answers are 2xx or 4xx, never 5xx: Temporal retries 5xx, and five retryable
// failures in a row hold every callback to this host for 60 s.
import type { CallbackSettings } from "./config";
import { problem } from "./problem";
import type { CompletionCallback } from "./temporal";
import { b64decode, b64encode } from "./temporal";

export const CALLBACK_PATH = "/v1/hooks/temporal-callback";

function signed(namespace: string, workflowId: string): Uint8Array {
  return new TextEncoder().encode(`edgeflow-callback:v1\n${namespace}\n${workflowId}`);
}

async function hmacKey(key: Uint8Array, use: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [use]);
}

const toUrl64 = (s: string) => s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromUrl64 = (s: string) => s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);

/** The run's token (base64url), under the first key. */
export async function callbackToken(keys: Uint8Array[], namespace: string, workflowId: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(keys[0], "sign"), signed(namespace, workflowId));
  return toUrl64(b64encode(new Uint8Array(sig)));
}

/** The callback to attach to a start. */
export async function completionCallback(s: CallbackSettings, namespace: string, workflowId: string): Promise<CompletionCallback> {
  return {
    url: `${s.url}?wf=${encodeURIComponent(workflowId)}`,
    header: { Authorization: `Bearer ${await callbackToken(s.keys, namespace, workflowId)}` },
  };
}

/**
 * The workflow id a callback speaks for, once its token checks out (in
 * constant time, against every key); 400 or 401 otherwise.
 */
export async function verifyCallback(request: Request, s: CallbackSettings, namespace: string): Promise<string> {
  const workflowId = new URL(request.url).searchParams.get("wf");
  if (!workflowId || workflowId.length > 1000) throw problem("invalid-request", { detail: "wf (the workflow id) is required" });
  // Temporal names the run in Nexus-Link; when present it must be the same run.
  const linked = linkedWorkflowId(request.headers.get("Nexus-Link"));
  if (linked !== null && linked !== workflowId) throw problem("invalid-request", { detail: "Nexus-Link names another workflow" });
  const m = /^Bearer ([A-Za-z0-9_-]{1,100})$/.exec(request.headers.get("Authorization") ?? "");
  if (!m) throw problem("webhook-rejected", { code: "signature_missing" });
  let sig: Uint8Array;
  try {
    sig = b64decode(fromUrl64(m[1]));
  } catch {
    throw problem("webhook-rejected", { code: "signature_invalid" });
  }
  for (const key of s.keys) {
    if (await crypto.subtle.verify("HMAC", await hmacKey(key, "verify"), sig, signed(namespace, workflowId))) return workflowId;
  }
  throw problem("webhook-rejected", { code: "signature_invalid" });
}

/**
 * The workflow id in a `Nexus-Link` header
 * (`<temporal:///namespaces/NS/workflows/ID/RUN/history?…>; type="…"`), or null.
 */
export function linkedWorkflowId(header: string | null): string | null {
  const m = header && /^<temporal:\/\/\/namespaces\/[^/]+\/workflows\/([^/]+)\/[^/]+\/history[^>]*>/.exec(header.trim());
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}
