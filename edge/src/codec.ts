// The payload codec, the same as the worker's (src/codec/) and Temporal's Go, Python and
// TypeScript encryption samples': the whole Payload, protobuf-serialized, sealed with
// AES-256-GCM (no associated data); the new payload's data is a random 12-byte nonce ‖
// ciphertext ‖ 16-byte tag, its metadata `encoding: binary/encrypted` and
// `encryption-key-id: <id>`. Every configured key decrypts (picked by the payload's own key id);
// only the active one encrypts. A payload that is not `binary/encrypted` passes through, so runs
// started before encryption still finish. Payloads here are in the JSON form of Temporal's HTTP
// API (metadata values and data in base64), as temporal.ts sends and reads them.
//
// Protobuf is written and read by hand: a Payload is two fields (1: map<string, bytes>
// metadata, 2: bytes data), not worth a protobuf runtime in the Worker.
import { b64decode, b64encode, type Payload } from "./temporal";

export const ENCRYPTED_ENCODING = "binary/encrypted";
export const KEY_ID_METADATA = "encryption-key-id";
const NONCE_LEN = 12;
const TAG_LEN = 16;
export const KEY_LEN = 32;

/** Keys by id (raw 32 bytes each) and the id that encrypts: `ENCRYPTION_KEYS`, `ENCRYPTION_ACTIVE_KEY_ID`. */
export interface EncryptionSettings {
  keys: Map<string, Uint8Array>;
  activeKeyId: string;
}

/** A payload that cannot be decrypted (or encrypted); the message names the key id, never a key. */
export class CodecError extends Error {
  constructor(
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
    this.name = "CodecError";
  }
}

export class PayloadCodec {
  private constructor(
    private readonly keys: Map<string, CryptoKey>,
    private readonly activeKeyId: string,
  ) {}

  static async create(s: EncryptionSettings): Promise<PayloadCodec> {
    const keys = new Map<string, CryptoKey>();
    for (const [id, raw] of s.keys) {
      keys.set(id, await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]));
    }
    if (!keys.has(s.activeKeyId)) throw new CodecError(`active key id \`${s.activeKeyId}\` names no key`, s.activeKeyId);
    return new PayloadCodec(keys, s.activeKeyId);
  }

  /** Seals one payload with the active key, under a fresh random nonce (`nonce` only for tests of the format). */
  async encode(p: Payload, nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(NONCE_LEN))): Promise<Payload> {
    const key = this.keys.get(this.activeKeyId)!;
    const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, tagLength: TAG_LEN * 8 }, key, serializePayload(p)));
    const data = new Uint8Array(NONCE_LEN + sealed.length);
    data.set(nonce);
    data.set(sealed, NONCE_LEN);
    return {
      metadata: { encoding: b64text(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: b64text(this.activeKeyId) },
      data: b64encode(data),
    };
  }

  /** Opens a payload with the key it names; one that is not encrypted comes back as it is. */
  async decode(p: Payload): Promise<Payload> {
    const keyId = encryptedWith(p);
    if (keyId === null) return p;
    const key = this.keys.get(keyId);
    if (!key) {
      const held = [...this.keys.keys()].sort().map((id) => `\`${id}\``).join(", ");
      throw new CodecError(`payload encrypted with key \`${keyId}\`, which this edge does not hold (it holds ${held}); add that key to ENCRYPTION_KEYS to decrypt it`, keyId);
    }
    const data = b64decode(p.data ?? "");
    if (data.length < NONCE_LEN + TAG_LEN) throw new CodecError(`payload encrypted with key \`${keyId}\` is ${data.length} bytes, shorter than a nonce and a tag`, keyId);
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: data.subarray(0, NONCE_LEN), tagLength: TAG_LEN * 8 }, key, data.subarray(NONCE_LEN)));
    } catch {
      throw new CodecError(`payload encrypted with key \`${keyId}\` does not decrypt: this edge's key \`${keyId}\` is not the one that encrypted it, or the payload was altered`, keyId);
    }
    try {
      return parsePayload(plain);
    } catch (e) {
      throw new CodecError(`payload decrypted with key \`${keyId}\` is not a serialized Payload: ${e instanceof Error ? e.message : e}`, keyId);
    }
  }
}

/**
 * Decodes with `codec`, or, where the edge holds no keys, passes plaintext through and refuses an
 * encrypted payload with a message that says so (rather than handing its ciphertext on as text).
 */
export async function openPayload(codec: PayloadCodec | undefined, p: Payload): Promise<Payload> {
  if (codec) return codec.decode(p);
  const keyId = encryptedWith(p);
  if (keyId !== null) throw new CodecError(`payload encrypted with key \`${keyId}\`, and this edge holds no keys: set ENCRYPTION_KEYS and ENCRYPTION_ACTIVE_KEY_ID`, keyId);
  return p;
}

/** The key id of an encrypted payload; null for any other. */
function encryptedWith(p: Payload): string | null {
  if (!p || typeof p !== "object" || !p.metadata || text(p.metadata.encoding) !== ENCRYPTED_ENCODING) return null;
  const id = p.metadata[KEY_ID_METADATA];
  if (id === undefined) throw new CodecError(`payload is \`${ENCRYPTED_ENCODING}\` but has no \`${KEY_ID_METADATA}\``);
  return text(id);
}

function text(b64: string | undefined): string {
  if (b64 === undefined) return "";
  try {
    return new TextDecoder().decode(b64decode(b64));
  } catch {
    return "";
  }
}

function b64text(s: string): string {
  return b64encode(new TextEncoder().encode(s));
}

// Protobuf wire format: a field's key is (number << 3 | wire type); 2 is length-delimited.

function varint(n: number, out: number[]): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

function field(out: number[], number: number, bytes: Uint8Array): void {
  varint((number << 3) | 2, out);
  varint(bytes.length, out);
  for (const b of bytes) out.push(b);
}

/**
 * `temporal.api.common.v1.Payload` serialized as protobuf's own encoders do: metadata entries in
 * the payload's order, each with key and value; data only when not empty (proto3).
 */
export function serializePayload(p: Payload): Uint8Array {
  const out: number[] = [];
  for (const [k, v] of Object.entries(p.metadata ?? {})) {
    const entry: number[] = [];
    field(entry, 1, new TextEncoder().encode(k));
    field(entry, 2, b64decode(v));
    field(out, 1, Uint8Array.from(entry));
  }
  const data = b64decode(p.data ?? "");
  if (data.length) field(out, 2, data);
  return Uint8Array.from(out);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let n = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.done) throw new Error("truncated varint");
      const b = this.buf[this.pos++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
    }
    throw new Error("varint too long");
  }
  bytes(len: number): Uint8Array {
    if (len > this.buf.length - this.pos) throw new Error("truncated field");
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.bytes(8);
    else if (wire === 2) this.bytes(this.varint());
    else if (wire === 5) this.bytes(4);
    else throw new Error(`wire type ${wire} is not supported`);
  }
}

/** Parses a serialized Payload; fields other than metadata and data are skipped. */
export function parsePayload(buf: Uint8Array): Payload {
  const r = new Reader(buf);
  const metadata: Record<string, string> = {};
  let data: Uint8Array = new Uint8Array(0);
  while (!r.done) {
    const tag = r.varint();
    const [num, wire] = [Math.floor(tag / 8), tag % 8];
    if (num === 1 && wire === 2) {
      const e = new Reader(r.bytes(r.varint()));
      let key = "";
      let value: Uint8Array = new Uint8Array(0);
      while (!e.done) {
        const t = e.varint();
        if (t === 0x0a) key = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(e.bytes(e.varint()));
        else if (t === 0x12) value = e.bytes(e.varint());
        else e.skip(t % 8);
      }
      metadata[key] = b64encode(value);
    } else if (num === 2 && wire === 2) {
      data = r.bytes(r.varint());
    } else {
      r.skip(wire);
    }
  }
  return { metadata, data: b64encode(data) };
}

// One codec per isolate and settings object: importing keys is async and not free.
const codecs = new WeakMap<EncryptionSettings, Promise<PayloadCodec>>();

export function codecFor(s: EncryptionSettings): Promise<PayloadCodec> {
  let c = codecs.get(s);
  if (!c) {
    c = PayloadCodec.create(s);
    codecs.set(s, c);
  }
  return c;
}
