// How a caller is named wherever Temporal stores it, and how run ids derived from caller input are
// scoped to the caller.
//
// Temporal keeps search attributes, identities, workflow ids, header baggage and cancel reasons
// in plaintext: the payload codec cannot reach them. With `CALLER_HASH_KEY` set, the caller appears
// there only as a keyed hash of its issuer and subject (`principal`), and the memo's input digest
// is an HMAC, so nobody reading the cluster can confirm a guessed email. Without it, the subject is
// stored as it is and the digest is a plain SHA-256 (the edge refuses that combination when payloads
// are encrypted: see config.ts).
//
// Run ids taken from the input (an order's `order_id`) are prefixed with the caller's `scope`, so
// two customers sending the same order id get two runs: neither can take, block or probe the
// other's ids.

import { authenticate, type Caller } from "./auth";
import type { Ctx } from "./routes";
import { canonicalJson, sha256Hex } from "./schemas";

/** The caller as the edge authenticated it, plus how Temporal may name it. */
export interface NamedCaller extends Caller {
  /** What goes into the memo, search attributes, identity, baggage and gateway tokens for this caller. */
  principal: string;
  /** 20 hex characters (80 bits) that prefix the run ids this caller's input names. */
  scope: string;
}

const enc = new TextEncoder();
const hmacKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

function hmacKey(raw: Uint8Array): Promise<CryptoKey> {
  let k = hmacKeys.get(raw);
  if (!k) {
    k = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    hmacKeys.set(raw, k);
  }
  return k;
}

/** HMAC-SHA-256 of `text` under `key` as hex, or plain SHA-256 when there is no key. */
async function digestHex(key: Uint8Array | undefined, text: string): Promise<string> {
  if (!key) return sha256Hex(text);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(key), enc.encode(text));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The caller with its principal and scope; `key` is `CALLER_HASH_KEY`'s bytes, if set. */
export async function nameCaller(caller: Caller, key: Uint8Array | undefined): Promise<NamedCaller> {
  const who = `${caller.issuer}\n${caller.subject}`;
  const scope = (await digestHex(key, `scope\n${who}`)).slice(0, 20);
  const principal = key ? `h:${(await digestHex(key, `principal\n${who}`)).slice(0, 32)}` : caller.subject;
  return { ...caller, principal, scope };
}

/** Authenticates the request's caller and names it; kept on `c` for the access log and the gateway. */
export async function identify(c: Ctx): Promise<NamedCaller> {
  c.caller = await nameCaller(await authenticate(c.request, c.settings, c.fetch), c.settings.callerHashKey);
  return c.caller;
}

/** The memo fields that let a repeated start be told apart from a different input under the same id. */
export async function inputDigest(input: unknown, key: Uint8Array | undefined): Promise<Record<string, string>> {
  const canonical = canonicalJson(input);
  return key ? { edge_input_hmac: await digestHex(key, `input\n${canonical}`) } : { edge_input_sha256: await sha256Hex(canonical) };
}

/**
 * Whether a run's memo records this same input. Runs started before `CALLER_HASH_KEY` was set carry
 * the plain SHA-256 (`edge_input_sha256`): both are checked, so repeats of those runs still match.
 */
export async function sameInput(memo: Record<string, unknown>, input: unknown, key: Uint8Array | undefined): Promise<boolean> {
  const canonical = canonicalJson(input);
  if (typeof memo.edge_input_hmac === "string") return !!key && memo.edge_input_hmac === (await digestHex(key, `input\n${canonical}`));
  return typeof memo.edge_input_sha256 === "string" && memo.edge_input_sha256 === (await sha256Hex(canonical));
}

/**
 * Whether a run's memo names this caller: by principal, or, for runs started before
 * `CALLER_HASH_KEY` was set, by subject (never a subject that looks like a principal).
 */
export function startedBy(memo: Record<string, unknown>, caller: NamedCaller): boolean {
  const by = memo.edge_subject;
  return by === caller.principal || (by === caller.subject && !caller.subject.startsWith("h:"));
}
