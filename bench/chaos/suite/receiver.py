"""The completion-webhook receiver of a chaos run: every POST is verified with the reference
Standard Webhooks library (`standardwebhooks`) against the worker's signing secret, and counted
by its `webhook-id`. With `--fail-first-per-id N` it answers 500 to the first N deliveries of
each id, like a receiver that is having a bad minute, then 204.

`GET /_received` answers what it saw:
`{"posts", "bad_signatures", "failed_on_purpose", "ids": {ID: {"workflow_id", "type",
"deliveries", "accepted"}}}`.

Run as its own process (`python -m suite.receiver --port P --secret whsec_…`); it prints
`receiver listening` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def app(secret: str, fail_first_per_id: int) -> web.Application:
    verifier = Webhook(secret)
    seen = {"posts": 0, "bad_signatures": 0, "failed_on_purpose": 0}
    ids: dict[str, dict] = {}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        seen["posts"] += 1
        try:
            event = verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            seen["bad_signatures"] += 1
            return web.Response(status=401, text="bad signature")
        webhook_id = request.headers.get("webhook-id", "")
        entry = ids.setdefault(webhook_id, {
            "workflow_id": (event.get("data") or {}).get("workflow_id"),
            "type": event.get("type"),
            "deliveries": 0,
            "accepted": 0,
        })
        entry["deliveries"] += 1
        if entry["deliveries"] <= fail_first_per_id:
            seen["failed_on_purpose"] += 1
            return web.Response(status=500, text="not now")
        entry["accepted"] += 1
        return web.Response(status=204)

    async def received(_request: web.Request) -> web.Response:
        return web.Response(text=json.dumps({**seen, "ids": ids}), content_type="application/json")

    application = web.Application()
    application.router.add_get("/_received", received)
    application.router.add_post("/{tail:.*}", receive)
    return application


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="the worker's signing secret, whsec_…")
    parser.add_argument("--fail-first-per-id", type=int, default=0)
    args = parser.parse_args()
    runner = web.AppRunner(app(args.secret, args.fail_first_per_id), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024).start()
    print("receiver listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
