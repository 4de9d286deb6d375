// kv.put and kv.delete: cache hints in Workers KV (ACTIVITY_KV), next to the users who read
// them. The order workflow writes `order-status/<workflow id>` with kv.put (docs/architecture.md,
// "Activities at the edge"). Both are idempotent: a retried attempt writes or deletes the same
// key again. Keys under the edge's own record prefixes are refused even though ACTIVITY_KV is
// a namespace of its own: a deployment that binds one namespace twice must still not let an
// activity forge a run hint or an ownership record.
import { ActivityError, defineActivity } from "./activity";

/**
 * Prefixes of the edge's own record keys, compared without case: `run:` (run hints in
 * RUN_STATUS), `hook:` (webhook ids, in RunWaiter), and `edge:` and `owner:` kept free for records
 * the edge may add (run ownership lives in Temporal's memo today).
 */
export const RESERVED_PREFIXES = ["run:", "hook:", "edge:", "owner:"];

/** Workers KV caps keys at 512 bytes; hints are small, values at 64 KiB. */
const KEY = {
  type: "string",
  minLength: 1,
  maxLength: 512,
  // Printable, no spaces or control characters: keys are read back by URL-safe names.
  pattern: "^[\\x21-\\x7e]+$",
  description: "The KV key; not under a reserved prefix (run:, hook:, edge:, owner:).",
};

export const MAX_VALUE_CHARS = 65536;

function checkKey(key: string): void {
  const lower = key.toLowerCase();
  const reserved = RESERVED_PREFIXES.find((p) => lower.startsWith(p));
  if (reserved) {
    throw new ActivityError("ReservedKey", `key ${JSON.stringify(key.slice(0, 100))} is under the reserved prefix ${reserved} (the edge's own records)`, {
      nonRetryable: true,
    });
  }
}

export interface KvPutInput {
  key: string;
  value: string;
  expiration_ttl_secs?: number;
}

export const kvPut = defineActivity<KvPutInput, { key: string }>({
  name: "kv.put",
  description: "Writes a string under a key in ACTIVITY_KV, optionally expiring (a cache hint the edge serves).",
  input: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "KvPutInput",
    type: "object",
    properties: {
      key: KEY,
      value: { type: "string", maxLength: MAX_VALUE_CHARS },
      // Workers KV's minimum expiration is 60 s; a year is far past any hint's use.
      expiration_ttl_secs: { type: "integer", minimum: 60, maximum: 31536000 },
    },
    required: ["key", "value"],
    additionalProperties: false,
  },
  output: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "KvPutOutput",
    type: "object",
    properties: { key: KEY },
    required: ["key"],
    additionalProperties: false,
  },
  async handler(input, ctx) {
    checkKey(input.key);
    await ctx.env.ACTIVITY_KV.put(input.key, input.value, input.expiration_ttl_secs ? { expirationTtl: input.expiration_ttl_secs } : undefined);
    ctx.log.info("kv.put", { key: input.key, bytes: input.value.length, ttl_secs: input.expiration_ttl_secs ?? null });
    return { key: input.key };
  },
});

export const kvDelete = defineActivity<{ key: string }, { key: string; deleted: boolean }>({
  name: "kv.delete",
  description: "Deletes a key from ACTIVITY_KV; `deleted` says whether it held a value.",
  input: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "KvDeleteInput",
    type: "object",
    properties: { key: KEY },
    required: ["key"],
    additionalProperties: false,
  },
  output: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "KvDeleteOutput",
    type: "object",
    properties: { key: KEY, deleted: { type: "boolean" } },
    required: ["key", "deleted"],
    additionalProperties: false,
  },
  async handler(input, ctx) {
    checkKey(input.key);
    // KV's delete does not say whether the key existed; a read first does (eventually consistent,
    // so `deleted` is a hint, not a guarantee, and a retry after a delete answers false).
    const held = (await ctx.env.ACTIVITY_KV.get(input.key)) !== null;
    await ctx.env.ACTIVITY_KV.delete(input.key);
    ctx.log.info("kv.delete", { key: input.key, deleted: held });
    return { key: input.key, deleted: held };
  },
});
