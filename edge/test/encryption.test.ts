// Payload encryption through the edge (ENCRYPTION_KEYS, ENCRYPTION_ACTIVE_KEY_ID): what reaches
// Temporal is ciphertext (input, memo, signal and update arguments), what the caller hears is
// plaintext (results, failure messages from encoded attributes, update outcomes, typed
// refusals), and a bad key setting stops the edge at config load, naming the variable and key id.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { defaultDeps } from "../src/app";
import { PayloadCodec } from "../src/codec";
import { Catalog } from "../src/schemas";
import { b64decode, encodePayload, type Payload } from "../src/temporal";
import { installUpstreams, type Upstreams } from "./fakes";
import { callWith, order, read } from "./helpers";

const KEY_NEW = btoa(String.fromCharCode(...new Uint8Array(32).fill(0x5a)));
const KEY_OLD = btoa(String.fromCharCode(...new Uint8Array(32).fill(0x3c)));
const KEYS = { k2026_12: KEY_NEW, k2026_06: KEY_OLD };
const ENC = { ENCRYPTION_KEYS: JSON.stringify(KEYS), ENCRYPTION_ACTIVE_KEY_ID: "k2026_12", CALLER_HASH_KEY: btoa("h".repeat(32)) };
const EMAIL = "alice@example.com";

const codec = (keys: Record<string, string> = KEYS, active = "k2026_12") =>
  PayloadCodec.create({ keys: new Map(Object.entries(keys).map(([id, k]) => [id, b64decode(k)])), activeKeyId: active });
const text = (b64: string | undefined) => new TextDecoder().decode(b64decode(b64 ?? ""));
const encoding = (p: Payload) => text(p.metadata.encoding);

/** Every payload (an object with `metadata`) in a request body, with where it was. */
function payloads(v: unknown, at = "$"): { at: string; p: Payload }[] {
  if (!v || typeof v !== "object") return [];
  if ("metadata" in v && typeof (v as Payload).metadata === "object") return [{ at, p: v as Payload }];
  return Object.entries(v).flatMap(([k, x]) => payloads(x, `${at}.${k}`));
}

let up: Upstreams;
let worker: PayloadCodec;
let customer: string;
let approver: string;

beforeEach(async () => {
  up = await installUpstreams();
  // The fake Temporal's workflows read and write payloads as the worker does, with the same keys.
  worker = await codec();
  up.temporal.codec = worker;
  customer = await up.issuer.mint({ claims: { sub: `user-${crypto.randomUUID()}`, email: EMAIL, roles: ["customer"] } });
  approver = await up.issuer.mint({ claims: { sub: "dave", email: "dave@example.com", roles: ["approver"] } });
});

afterEach(() => vi.restoreAllMocks());

function closeWith(workflowId: string, status: string, event: Record<string, unknown>) {
  const run = up.temporal.runs.get(workflowId)!;
  run.status = status;
  run.closeEvent = { eventId: "9", ...event };
}

async function startOrder(input = order({ customer_email: EMAIL }), headers: Record<string, string> = {}) {
  return read(await callWith(ENC, "/v1/workflows/order", { token: customer, body: input, headers }));
}

describe("with ENCRYPTION_KEYS set", () => {
  it("sends Temporal only encrypted input and memo, and answers the caller with the decrypted result", async () => {
    const input = order({ customer_email: EMAIL });
    const result = await worker.encode(encodePayload({ order_id: input.order_id, charged_cents: 2500, email: EMAIL }));
    up.temporal.onStart = (run) => closeWith(run.workflowId, "WORKFLOW_EXECUTION_STATUS_COMPLETED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
      workflowExecutionCompletedEventAttributes: { result: { payloads: [result] } },
    });
    const r = await startOrder(input, { prefer: "wait=5" });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "completed", result: { order_id: input.order_id, charged_cents: 2500, email: EMAIL } });

    const [startCall] = up.temporal.startCalls();
    const sent = payloads(startCall.body);
    const sealed = sent.filter(({ at }) => at.startsWith("$.input") || at.startsWith("$.memo"));
    expect(sealed.map(({ at }) => at).sort()).toEqual(
      ["$.input.payloads.0", ...["edge_email", "edge_input_hmac", "edge_request_id", "edge_roles", "edge_subject"].map((k) => `$.memo.fields.${k}`)].sort(),
    );
    for (const { at, p } of sealed) {
      expect(Object.keys(p.metadata), at).toEqual(["encoding", "encryption-key-id"]);
      expect(encoding(p), at).toBe("binary/encrypted");
      expect(text(p.metadata["encryption-key-id"]), at).toBe("k2026_12");
    }
    // Search attributes, identity and the trace header stay plaintext (not encryptable): no email in
    // them, and the caller only as a keyed hash (CALLER_HASH_KEY), in the run's id neither.
    const subject = JSON.parse(atob(customer.split(".")[1])).sub as string;
    for (const { at, p } of sent) {
      expect(text(p.data), at).not.toContain(EMAIL);
      expect(text(p.data), at).not.toContain(subject);
    }
    expect(JSON.stringify(startCall.body)).not.toContain(EMAIL);
    expect(JSON.stringify(startCall.body)).not.toContain(subject);
    expect(startCall.body!.identity).toMatch(/^edge:h:[0-9a-f]{32}$/);
    expect(r.body.workflow_id).toMatch(new RegExp(`^order-[0-9a-f]{20}-${input.order_id}$`));
    // The worker, with the same key, reads the caller's input.
    expect(up.temporal.runs.get(r.body.workflow_id)!.input).toEqual(input);

    // The run's owner is read back from the encrypted memo.
    const again = await read(await callWith(ENC, `/v1/runs/${r.body.workflow_id}`, { token: customer }));
    expect(again.status).toBe(200);
    expect(again.body.result).toEqual(r.body.result);
  });

  it("finds a replayed order through its encrypted memo (same caller, same input: the same run)", async () => {
    const input = order({ customer_email: EMAIL });
    const first = await startOrder(input);
    const second = await startOrder(input);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.headers.get("Idempotent-Replayed")).toBe("true");
    expect(second.body.run_id).toBe(first.body.run_id);
  });

  it("tells the caller a failed run's message, moved by the worker into encrypted encodedAttributes", async () => {
    const r = await startOrder();
    const attributes = await worker.encode(encodePayload({ message: "payment declined for order", stack_trace: "at charge()" }));
    closeWith(r.body.workflow_id, "WORKFLOW_EXECUTION_STATUS_FAILED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
      workflowExecutionFailedEventAttributes: { failure: { message: "Encoded failure", encodedAttributes: attributes, applicationFailureInfo: { type: "PaymentDeclined" } } },
    });
    const got = await read(await callWith(ENC, `/v1/runs/${r.body.workflow_id}`, { token: customer }));
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ status: "failed", error: { message: "payment declined for order" } });
  });

  it("encrypts update arguments and decrypts the update's result", async () => {
    const id = (await startOrder()).body.workflow_id;
    const r = await read(await callWith(ENC, `/v1/runs/${id}/signals/approve`, { token: approver, body: { reason: "within budget" } }));
    expect(r.status).toBe(200);
    expect(r.body.result).toEqual({ state: "approved", approver: "dave", reason: "within budget" });
    const call = up.temporal.calls.find((c) => c.path.includes("/update/approve"))!;
    const [args] = call.body!.request.input.args.payloads;
    expect(encoding(args)).toBe("binary/encrypted");
    expect(up.temporal.runs.get(id)!.updates[0].input).toEqual({ approver: "dave", reason: "within budget" });
  });

  it("answers 422 naming the fields of an InvalidInput refusal whose message and details are encrypted", async () => {
    const id = (await startOrder()).body.workflow_id;
    const failure = {
      message: "Encoded failure",
      encodedAttributes: await worker.encode(encodePayload({ message: "update rejected", stack_trace: "" })),
      cause: {
        message: "Encoded failure",
        encodedAttributes: await worker.encode(encodePayload({ message: "invalid input", stack_trace: "" })),
        applicationFailureInfo: { type: "InvalidInput", nonRetryable: true, details: { payloads: [await worker.encode(encodePayload({ errors: [{ path: "$.reason", message: "is longer than 500 characters" }] }))] } },
      },
    };
    up.temporal.onUpdate = () => ({ failure });
    const r = await read(await callWith(ENC, `/v1/runs/${id}/signals/approve`, { token: approver, body: { reason: "x" } }));
    expect(r.status).toBe(422);
    expect(r.body.errors).toEqual([{ path: "$.reason", pointer: "/reason", detail: "is longer than 500 characters" }]);
  });

  it("answers 500 naming the key id when a refusal's details are under a key the edge does not hold, rather than guessing the fields", async () => {
    const id = (await startOrder()).body.workflow_id;
    const stranger = await codec({ k2027_01: btoa("k".repeat(32)) }, "k2027_01");
    const details = { payloads: [await stranger.encode(encodePayload({ errors: [{ path: "$.reason", message: "too long" }] }))] };
    up.temporal.onUpdate = () => ({ failure: { message: "invalid input", applicationFailureInfo: { type: "InvalidInput", details } } });
    vi.spyOn(console, "error").mockImplementation(() => {});
    const r = await read(await callWith(ENC, `/v1/runs/${id}/signals/approve`, { token: approver, body: {} }));
    expect(r.status).toBe(500);
    expect(r.body).toMatchObject({ code: "payload_undecryptable", detail: "A payload encrypted with key id k2027_01 could not be decrypted" });
  });

  it("answers 409 with the workflow's reason when an encrypted refusal is not about the input", async () => {
    const id = (await startOrder()).body.workflow_id;
    const encodedAttributes = await worker.encode(encodePayload({ message: "the order was already approved", stack_trace: "" }));
    up.temporal.onUpdate = () => ({ failure: { message: "Encoded failure", encodedAttributes, applicationFailureInfo: { type: "AlreadyDecided" } } });
    const r = await read(await callWith(ENC, `/v1/runs/${id}/signals/reject`, { token: approver, body: {} }));
    expect(r.status).toBe(409);
    expect(r.body.detail).toBe("the order was already approved");
  });

  it("encrypts a signal's arguments", async () => {
    const id = (await startOrder()).body.workflow_id;
    const catalog = Catalog.fromManifest(
      { version: 1, workflows: [{ name: "order", task_queue: "edgeflow", input: null, signals: [{ name: "note", input: "note.json" }], updates: [], queries: [] }] },
      { "note.json": { type: "object", properties: { text: { type: "string" } }, required: ["text"], additionalProperties: false } },
    );
    const admin = await up.issuer.mint({ claims: { sub: "root", roles: ["admin"] } });
    const r = await callWith(ENC, `/v1/runs/${id}/signals/note`, { token: admin, body: { text: EMAIL } }, { ...defaultDeps(), catalog });
    expect(r.status).toBe(202);
    const call = up.temporal.calls.find((c) => c.path.includes("/signal/note"))!;
    expect(encoding(call.body!.input.payloads[0])).toBe("binary/encrypted");
    expect(JSON.stringify(call.body)).not.toContain(btoa(JSON.stringify({ text: EMAIL })));
    expect(up.temporal.runs.get(id)!.signals[0].input).toEqual({ text: EMAIL });
  });

  it("reads plaintext payloads of runs started before encryption, and results under a rotated-out key", async () => {
    const plain = await startOrder();
    up.temporal.complete(plain.body.workflow_id, { charged_cents: 1 });
    expect((await read(await callWith(ENC, `/v1/runs/${plain.body.workflow_id}`, { token: customer }))).body.result).toEqual({ charged_cents: 1 });

    const old = await startOrder();
    const result = await (await codec(KEYS, "k2026_06")).encode(encodePayload({ charged_cents: 2 }));
    closeWith(old.body.workflow_id, "WORKFLOW_EXECUTION_STATUS_COMPLETED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
      workflowExecutionCompletedEventAttributes: { result: { payloads: [result] } },
    });
    expect((await read(await callWith(ENC, `/v1/runs/${old.body.workflow_id}`, { token: customer }))).body.result).toEqual({ charged_cents: 2 });
  });

  it("answers 500 naming the key id of a result under a key the edge does not hold, and logs it", async () => {
    const r = await startOrder();
    const result = await (await codec({ k2027_01: btoa("k".repeat(32)) }, "k2027_01")).encode(encodePayload({ charged_cents: 3 }));
    closeWith(r.body.workflow_id, "WORKFLOW_EXECUTION_STATUS_COMPLETED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
      workflowExecutionCompletedEventAttributes: { result: { payloads: [result] } },
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const got = await read(await callWith(ENC, `/v1/runs/${r.body.workflow_id}`, { token: customer }));
    expect(got.status).toBe(500);
    expect(got.body).toMatchObject({ type: "urn:edgeflow:problem:misconfigured", code: "payload_undecryptable", detail: "A payload encrypted with key id k2027_01 could not be decrypted" });
    const logged = errors.mock.calls.map((c) => JSON.parse(String(c[0])));
    expect(logged).toContainEqual(expect.objectContaining({ msg: "payload not decrypted", key_id: "k2027_01" }));
    expect(JSON.stringify(logged)).toContain("payload encrypted with key `k2027_01`, which this edge does not hold (it holds `k2026_06`, `k2026_12`)");
  });

  it("without keys, refuses an encrypted result with a message naming its key id rather than answering ciphertext", async () => {
    up.temporal.codec = undefined;
    const r = await read(await callWith({}, "/v1/workflows/order", { token: customer, body: order() }));
    closeWith(r.body.workflow_id, "WORKFLOW_EXECUTION_STATUS_COMPLETED", {
      eventType: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
      workflowExecutionCompletedEventAttributes: { result: { payloads: [await worker.encode(encodePayload({ charged_cents: 4 }))] } },
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const got = await read(await callWith({}, `/v1/runs/${r.body.workflow_id}`, { token: customer }));
    expect(got.status).toBe(500);
    expect(got.body.code).toBe("payload_undecryptable");
    expect(errors.mock.calls.map((c) => String(c[0])).join("\n")).toContain("and this edge holds no keys");
  });
});

describe("encryption settings", () => {
  async function refused(vars: Record<string, string>, message: string) {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const r = await read(await callWith(vars, "/healthz"));
    expect(r.status).toBe(500);
    expect(r.body.type).toBe("urn:edgeflow:problem:misconfigured");
    expect(r.body.detail).toBeUndefined();
    const line = errors.mock.calls.map((c) => String(c[0])).find((l) => l.includes("refusing to serve"))!;
    expect(JSON.parse(line).errors).toContain(message);
    // No key, good or bad, is ever logged.
    for (const secret of [KEY_NEW, KEY_OLD, SHORT, "bm90IGEga2V5"]) expect(line).not.toContain(secret);
    errors.mockRestore();
  }
  const SHORT = btoa("sixteen bytes!!!");

  it("serves with valid keys", async () => {
    expect((await callWith(ENC, "/healthz")).status).toBe(200);
  });

  it("refuses ENCRYPTION_KEYS that is not a JSON object", async () => {
    await refused({ ENCRYPTION_KEYS: `k1=${KEY_NEW}`, ENCRYPTION_ACTIVE_KEY_ID: "k1" }, 'ENCRYPTION_KEYS: not a JSON object of key id to base64 of 32 bytes ({"<id>": "<base64>"})');
    // One more error beside it: a set of errors already logged is not logged again by this isolate.
    await refused({ ENCRYPTION_KEYS: JSON.stringify([KEY_NEW]), ENCRYPTION_ACTIVE_KEY_ID: "0", MAX_WAIT_SECONDS: "301" }, 'ENCRYPTION_KEYS: not a JSON object of key id to base64 of 32 bytes ({"<id>": "<base64>"})');
  });

  it("refuses a key that is not base64, naming its id", async () => {
    await refused({ ENCRYPTION_KEYS: JSON.stringify({ k1: KEY_NEW, k2: "not a key!" }), ENCRYPTION_ACTIVE_KEY_ID: "k1" }, "ENCRYPTION_KEYS.k2: not base64 (expected the base64 of 32 bytes, e.g. from `openssl rand -base64 32`)");
    await refused({ ENCRYPTION_KEYS: JSON.stringify({ k1: KEY_OLD, k3: 42 }), ENCRYPTION_ACTIVE_KEY_ID: "k1" }, "ENCRYPTION_KEYS.k3: not base64 (expected the base64 of 32 bytes, e.g. from `openssl rand -base64 32`)");
  });

  it("refuses a key that is not 32 bytes, naming its id", async () => {
    await refused({ ENCRYPTION_KEYS: JSON.stringify({ k1: SHORT }), ENCRYPTION_ACTIVE_KEY_ID: "k1" }, "ENCRYPTION_KEYS.k1: 16 bytes, expected 32 (an AES-256 key)");
  });

  it("refuses an active key id that names no key, naming it and the ids there are", async () => {
    await refused({ ENCRYPTION_KEYS: JSON.stringify(KEYS), ENCRYPTION_ACTIVE_KEY_ID: "k2027_01" }, "ENCRYPTION_ACTIVE_KEY_ID: `k2027_01` names no key in ENCRYPTION_KEYS (it has `k2026_12`, `k2026_06`)");
  });

  it("refuses keys without an active key id, and an active key id without keys", async () => {
    await refused({ ENCRYPTION_KEYS: JSON.stringify({ k1: KEY_NEW }), ENCRYPTION_ACTIVE_KEY_ID: "" }, "ENCRYPTION_ACTIVE_KEY_ID: missing (required with ENCRYPTION_KEYS: the id of the key that encrypts)");
    await refused({ ENCRYPTION_KEYS: "", ENCRYPTION_ACTIVE_KEY_ID: "k1" }, "ENCRYPTION_ACTIVE_KEY_ID: set, but ENCRYPTION_KEYS is empty (the active key must be one of them)");
  });

  it("refuses encryption without CALLER_HASH_KEY, and a caller hash key that is short or not base64", async () => {
    const { CALLER_HASH_KEY: _, ...noHashKey } = ENC;
    await refused(noHashKey, "CALLER_HASH_KEY: missing (required with ENCRYPTION_KEYS, so that no subject reaches Temporal in plaintext; e.g. `openssl rand -base64 32`)");
    await refused({ ...ENC, CALLER_HASH_KEY: btoa("short") }, "CALLER_HASH_KEY: 5 bytes, expected at least 32");
    await refused({ ...ENC, CALLER_HASH_KEY: "not base64!" }, "CALLER_HASH_KEY: not base64 (expected the base64 of at least 32 random bytes, e.g. from `openssl rand -base64 32`)");
    await refused({ LEGACY_RUN_IDS: "yes" }, 'LEGACY_RUN_IDS: expected "true" or "false", got "yes"');
  });

  it("refuses an empty key set and a key id with spaces", async () => {
    await refused({ ENCRYPTION_KEYS: "{}", ENCRYPTION_ACTIVE_KEY_ID: "k1" }, "ENCRYPTION_KEYS: no key (unset it to turn encryption off)");
    await refused({ ENCRYPTION_KEYS: JSON.stringify({ "k 1": KEY_NEW, k2: KEY_OLD }), ENCRYPTION_ACTIVE_KEY_ID: "k2" }, 'ENCRYPTION_KEYS: key id "k 1" must be 1 to 100 printable ASCII characters without spaces');
  });
});
