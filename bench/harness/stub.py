"""The local HTTP service W2 calls: every GET answers `{"ok": true, "part": ...}` after a delay.
It is also W3's completion-webhook receiver: every POST answers 204 at once and is counted by its
`webhook-id` header; `GET /_received` answers `{"posts": N, "ids": M}` (M distinct ids).

W4 holds calls: a GET below `/hold/` gets no answer until `POST /_release`, after which it (and
every later one) answers like any GET. `GET /_held` answers `{"held": N, "answered": M}`: calls
waiting now, and held calls answered since the release.

Run as its own process (`python -m harness.stub --port P --delay-ms 20`) so its CPU is neither
the worker's nor the driver's; it prints `stub listening` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def app(delay_s: float) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        return web.json_response({"ok": True, "part": request.query.get("part")})

    posts = 0
    ids: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        nonlocal posts
        await request.read()
        posts += 1
        ids.add(request.headers.get("webhook-id", ""))
        return web.Response(status=204)

    async def received(_request: web.Request) -> web.Response:
        return web.json_response({"posts": posts, "ids": len(ids - {""})})

    released = asyncio.Event()
    held = answered = 0

    async def hold(request: web.Request) -> web.Response:
        nonlocal held, answered
        held += 1
        try:
            await released.wait()
        finally:
            held -= 1
        answered += 1
        return web.json_response({"ok": True, "part": request.query.get("part")})

    async def holding(_request: web.Request) -> web.Response:
        return web.json_response({"held": held, "answered": answered})

    async def release(_request: web.Request) -> web.Response:
        released.set()
        return web.Response(status=204)

    application = web.Application()
    application.router.add_get("/_received", received)
    application.router.add_get("/_held", holding)
    application.router.add_post("/_release", release)
    application.router.add_get("/hold/{tail:.*}", hold)
    application.router.add_get("/{tail:.*}", answer)
    application.router.add_post("/{tail:.*}", receive)
    return application


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    # handler_cancellation: a held call whose client hung up stops counting as held.
    runner = web.AppRunner(app(args.delay_ms / 1000), access_log=None, handler_cancellation=True)
    await runner.setup()
    # A deep accept backlog: 200 activities (W4: thousands) may connect at once.
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096).start()
    print("stub listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
