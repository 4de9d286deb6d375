"""The payload codec of Temporal's Python encryption sample, as the reference edgeflow's own codec
(src/codec/) is checked against.

The codec below is the sample's (samples-python, encryption/codec.py) with one change: keys by
id instead of one key, so payloads written under a rotated-out key still decrypt. Everything
else is the sample's: AES-256-GCM from the `cryptography` package over the whole Payload,
protobuf-serialized by Temporal's Python SDK; data = 12-byte nonce + ciphertext + tag; metadata
`encoding: binary/encrypted` and `encryption-key-id`; no associated data.

Payloads are read and written as JSON in the protojson shape the codec server protocol uses:
{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}.

  payload_codec.py vectors            prints test vectors (tests/vectors/payload-encryption.json)
  payload_codec.py decode < REQUEST   decrypts {"keys": {id: base64 key}, "payloads": [...]}
                                      and prints {"payloads": [...]}
  payload_codec.py start-order < REQUEST
      with a client of Temporal's Python SDK whose data converter carries this codec (as the
      sample's starter does), starts {"workflow": ..., "input": ...} as {"workflow_id": ...} on
      {"task_queue": ...} at {"address": ...}, under {"keys": ..., "active_key_id": ...}, waits
      for the run and prints {"result": ...}
"""

import asyncio
import base64
import dataclasses
import json
import os
import sys
from typing import Dict, Iterable, List

import temporalio.converter
from temporalio.client import Client

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

# The sample's own key and key id.
SAMPLE_KEY = b"test-key-test-key-test-key-test!"
SAMPLE_KEY_ID = "test-key-id"
# A second key, for payloads written after a rotation.
ROTATED_KEY = bytes(range(32))
ROTATED_KEY_ID = "key-2026-12"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Dict[str, bytes], active_key_id: str) -> None:
        super().__init__()
        self.key_id = active_key_id
        self.encryptors = {key_id: AESGCM(key) for key_id, key in keys.items()}

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        return [
            Payload(
                metadata={
                    "encoding": b"binary/encrypted",
                    "encryption-key-id": self.key_id.encode(),
                },
                data=self.encrypt(p.SerializeToString()),
            )
            for p in payloads
        ]

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        ret: List[Payload] = []
        for p in payloads:
            if p.metadata.get("encoding", b"").decode() != "binary/encrypted":
                ret.append(p)
                continue
            key_id = p.metadata.get("encryption-key-id", b"").decode()
            if key_id not in self.encryptors:
                raise ValueError(f"Unrecognized key ID {key_id}.")
            ret.append(Payload.FromString(self.decrypt(key_id, p.data)))
        return ret

    def encrypt(self, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.encryptors[self.key_id].encrypt(nonce, data, None)

    def decrypt(self, key_id: str, data: bytes) -> bytes:
        return self.encryptors[key_id].decrypt(data[:12], data[12:], None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def to_json(p: Payload) -> dict:
    return {
        "metadata": {k: b64(v) for k, v in sorted(p.metadata.items())},
        "data": b64(p.data),
    }


def from_json(j: dict) -> Payload:
    return Payload(
        metadata={k: base64.b64decode(v) for k, v in j.get("metadata", {}).items()},
        data=base64.b64decode(j.get("data", "")),
    )


def json_plain(value) -> Payload:
    return Payload(
        metadata={"encoding": b"json/plain"},
        data=json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
    )


async def vectors() -> dict:
    plaintexts = [
        json_plain({"order_id": "ord-1", "email": "ada@example.com", "amount_cents": 4200}),
        json_plain("Grüße, 世界: not only ASCII"),
        Payload(metadata={"encoding": b"binary/null"}),
        Payload(
            metadata={
                "encoding": b"json/protobuf",
                "messageType": b"temporal.api.common.v1.WorkflowExecution",
            },
            data=b'{"workflowId":"order-ord-1"}',
        ),
        Payload(metadata={"encoding": b"binary/plain"}, data=bytes(range(256))),
    ]
    keys = {SAMPLE_KEY_ID: SAMPLE_KEY, ROTATED_KEY_ID: ROTATED_KEY}
    out = []
    for key_id, key in keys.items():
        codec = EncryptionCodec(keys, key_id)
        encoded = await codec.encode(plaintexts)
        for plain, enc in zip(plaintexts, encoded):
            # Each vector checks itself before it is written.
            assert (await codec.decode([enc]))[0] == plain
            out.append(
                {
                    "key_id": key_id,
                    "key": b64(key),
                    "plaintext": to_json(plain),
                    "encoded": to_json(enc),
                }
            )
    return {
        "about": "Payloads encrypted by the codec of Temporal's Python encryption sample "
        "(tests/python/payload_codec.py vectors): AES-256-GCM over the protobuf-serialized "
        "Payload, data = 12-byte nonce + ciphertext + 16-byte tag, no associated data.",
        "vectors": out,
    }


async def decode(request: dict) -> dict:
    keys = {key_id: base64.b64decode(k) for key_id, k in request["keys"].items()}
    codec = EncryptionCodec(keys, next(iter(keys)))
    decoded = await codec.decode(from_json(p) for p in request["payloads"])
    return {"payloads": [to_json(p) for p in decoded]}


async def start_order(request: dict) -> dict:
    keys = {key_id: base64.b64decode(k) for key_id, k in request["keys"].items()}
    client = await Client.connect(
        request["address"],
        data_converter=dataclasses.replace(
            temporalio.converter.default(),
            payload_codec=EncryptionCodec(keys, request["active_key_id"]),
        ),
    )
    result = await client.execute_workflow(
        request["workflow"],
        request["input"],
        id=request["workflow_id"],
        task_queue=request["task_queue"],
    )
    return {"result": result}


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "vectors":
        result = asyncio.run(vectors())
    elif mode == "decode":
        result = asyncio.run(decode(json.load(sys.stdin)))
    elif mode == "start-order":
        result = asyncio.run(start_order(json.load(sys.stdin)))
    else:
        sys.exit(__doc__)
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    if mode == "start-order":
        # The SDK's client runtime (Rust threads) can crash at interpreter teardown
        # (PyGILState_Release) after the answer is out: leave without tearing down.
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
