"""The SMTP server of a chaos run: aiosmtpd (from the project's `.tools/venv`) accepting every
message and appending one JSON line per message to a file: its `Message-ID`, its envelope
recipients, `accepted_at`, the Unix time at which it took the message, just before it answers
`250`, and `envelope_at`, when the envelope's last `RCPT TO` came (the client sends `DATA` and the
message right after). The suite counts copies (one `Message-ID` twice) and measures the SMTP
window from both to the worker's sent-ledger row.

Run as its own process (`python smtp_server.py --port P --out FILE`); it prints
`smtp listening` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import time

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        envelope.envelope_at = time.time()
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content)
        self.out.write(json.dumps({
            "message_id": message.get("Message-ID"),
            "rcpt_to": envelope.rcpt_tos,
            "accepted_at": time.time(),
            "envelope_at": getattr(envelope, "envelope_at", None),
        }) + "\n")
        self.out.flush()
        return "250 2.0.0 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = open(args.out, "a", encoding="utf-8")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(
        lambda: SMTP(Recorder(out), hostname="chaos-smtp", enable_SMTPUTF8=True),
        host="127.0.0.1", port=args.port, backlog=1024))
    print("smtp listening", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
