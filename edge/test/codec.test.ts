// The payload codec against the test vectors Temporal's Python encryption sample wrote
// (tests/vectors/payload-encryption.json, which the worker's src/codec/tests.rs reads too), and
// its behaviour on plaintext, unknown keys, altered or foreign ciphertext.
import { describe, expect, it } from "vitest";
import vectorsText from "../../tests/vectors/payload-encryption.json?raw";
import { CodecError, openPayload, parsePayload, PayloadCodec, serializePayload } from "../src/codec";
import { b64decode, b64encode, decodePayload, encodePayload, type Payload } from "../src/temporal";

interface Vector {
  key_id: string;
  key: string;
  plaintext: Payload;
  encoded: Payload;
}

const vectors = (JSON.parse(vectorsText) as { vectors: Vector[] }).vectors;
const SAMPLE_KEY = new TextEncoder().encode("test-key-test-key-test-key-test!");
const text = (b64: string | undefined) => new TextDecoder().decode(b64decode(b64 ?? ""));

function codec(keys: Record<string, Uint8Array>, active: string): Promise<PayloadCodec> {
  return PayloadCodec.create({ keys: new Map(Object.entries(keys)), activeKeyId: active });
}

describe("the payload codec", () => {
  it("decodes every vector the Python sample's codec encoded", async () => {
    expect(vectors.length).toBeGreaterThanOrEqual(10);
    const keys = Object.fromEntries(vectors.map((v) => [v.key_id, b64decode(v.key)]));
    expect(keys["test-key-id"]).toEqual(SAMPLE_KEY);
    const c = await codec(keys, "test-key-id");
    for (const v of vectors) {
      expect(text(v.encoded.metadata.encoding)).toBe("binary/encrypted");
      expect(text(v.encoded.metadata["encryption-key-id"])).toBe(v.key_id);
      expect(await c.decode(v.encoded), v.key_id).toEqual({ metadata: v.plaintext.metadata, data: v.plaintext.data ?? "" });
    }
  });

  it("seals byte for byte as the Python sample given its nonce (same serialization, layout, no associated data)", async () => {
    let checked = 0;
    // With one metadata entry, protobuf has one byte order; the vectors with two are checked by decoding.
    for (const v of vectors.filter((v) => Object.keys(v.plaintext.metadata).length === 1)) {
      const c = await codec({ [v.key_id]: b64decode(v.key) }, v.key_id);
      const nonce = b64decode(v.encoded.data!).subarray(0, 12);
      expect(await c.encode(v.plaintext, nonce)).toEqual(v.encoded);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(6);
  });

  it("serializes and parses a Payload as protobuf, skipping fields it does not know", () => {
    for (const v of vectors) {
      expect(parsePayload(serializePayload(v.plaintext))).toEqual({ metadata: v.plaintext.metadata, data: v.plaintext.data ?? "" });
    }
    const p = encodePayload({ n: 1 });
    const known = serializePayload(p);
    // Field 3 (Temporal's newer external_payloads) and a varint field 9 after the known ones.
    const extended = Uint8Array.from([...known, 0x1a, 0x02, 0x08, 0x01, 0x48, 0x96, 0x01]);
    expect(parsePayload(extended)).toEqual(p);
    expect(() => parsePayload(known.subarray(0, known.length - 1))).toThrow(/truncated/);
  });

  it("encrypts whole payloads with the active key under a fresh nonce, and decrypts them back", async () => {
    const c = await codec({ a: SAMPLE_KEY, b: new Uint8Array(32).fill(7) }, "b");
    const plain = encodePayload({ email: "ada@example.com" });
    const sealed = await c.encode(plain);
    expect(Object.fromEntries(Object.entries(sealed.metadata).map(([k, v]) => [k, text(v)]))).toEqual({ encoding: "binary/encrypted", "encryption-key-id": "b" });
    expect(b64decode(sealed.data!).length).toBe(12 + serializePayload(plain).length + 16);
    expect(text(sealed.data)).not.toContain("ada@example.com");
    expect((await c.encode(plain)).data).not.toBe(sealed.data);
    expect(decodePayload(await c.decode(sealed))).toEqual({ email: "ada@example.com" });
  });

  it("reads a payload under a rotated-out key and names a key it does not hold", async () => {
    const before = await codec({ key_a: SAMPLE_KEY }, "key_a");
    const after = await codec({ key_a: SAMPLE_KEY, key_b: new Uint8Array(32).fill(9) }, "key_b");
    const onlyB = await codec({ key_b: new Uint8Array(32).fill(9) }, "key_b");
    const sealed = await before.encode(encodePayload("started under key_a"));
    expect(decodePayload(await after.decode(sealed))).toBe("started under key_a");
    const e = await onlyB.decode(sealed).catch((e) => e);
    expect(e).toBeInstanceOf(CodecError);
    expect(e.keyId).toBe("key_a");
    expect(e.message).toBe("payload encrypted with key `key_a`, which this edge does not hold (it holds `key_b`); add that key to ENCRYPTION_KEYS to decrypt it");
  });

  it("passes plaintext through; without keys, refuses an encrypted payload naming its key id", async () => {
    const c = await codec({ a: SAMPLE_KEY }, "a");
    const plain = encodePayload(42);
    expect(await c.decode(plain)).toBe(plain);
    expect(await openPayload(undefined, plain)).toBe(plain);
    const sealed = await c.encode(plain);
    await expect(openPayload(undefined, sealed)).rejects.toThrow("payload encrypted with key `a`, and this edge holds no keys: set ENCRYPTION_KEYS and ENCRYPTION_ACTIVE_KEY_ID");
    await expect(c.decode({ metadata: { encoding: btoa("binary/encrypted") }, data: sealed.data })).rejects.toThrow("has no `encryption-key-id`");
  });

  it("refuses altered, truncated and foreign ciphertext, naming the key id", async () => {
    const c = await codec({ a: SAMPLE_KEY }, "a");
    const sealed = await c.encode(encodePayload(1));
    const data = b64decode(sealed.data!);
    for (const at of [0, 12, data.length - 1]) {
      const flipped = data.slice();
      flipped[at] ^= 1;
      await expect(c.decode({ ...sealed, data: b64encode(flipped) }), `byte ${at}`).rejects.toThrow("payload encrypted with key `a` does not decrypt");
    }
    await expect(c.decode({ ...sealed, data: b64encode(data.subarray(0, 27)) })).rejects.toThrow("payload encrypted with key `a` is 27 bytes, shorter than a nonce and a tag");
    // Another deployment's key under the same id.
    const foreign = await (await codec({ a: new Uint8Array(32).fill(1) }, "a")).encode(encodePayload(1));
    await expect(c.decode(foreign)).rejects.toThrow(CodecError);
    // The Python sample's vector, decrypted with a key of the right id but the wrong bytes.
    const v = vectors[0];
    await expect((await codec({ [v.key_id]: new Uint8Array(32) }, v.key_id)).decode(v.encoded)).rejects.toThrow(`payload encrypted with key \`${v.key_id}\` does not decrypt`);
  });
});
