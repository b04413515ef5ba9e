"""The baselines: bare Starlette routes under uvicorn, doing only what no gateway can skip.

`POST /facebook` verifies the signature and answers; `POST /conversations.list` and
`POST /graphql` answer the JSON in BENCH_PAGE_FILE, read into memory at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.sources.facebook.signature import is_valid

SECRET = os.environ.get("BENCH_APP_SECRET", "")
PAGE = Path(os.environ["BENCH_PAGE_FILE"]).read_bytes() if os.environ.get("BENCH_PAGE_FILE") \
    else b"{}"


async def webhook(request: Request) -> Response:
    body = await request.body()
    if not is_valid(SECRET, body, request.headers.get("x-hub-signature-256")):
        return PlainTextResponse("bad signature", status_code=403)
    return PlainTextResponse("EVENT_RECEIVED")


async def page(request: Request) -> Response:
    await request.body()
    return Response(PAGE, media_type="application/json")


app = Starlette(routes=[
    Route("/facebook", webhook, methods=["POST"]),
    Route("/conversations.list", page, methods=["POST"]),
    Route("/graphql", page, methods=["POST"]),
    Route("/health", lambda request: PlainTextResponse("ok"), methods=["GET"]),
])
