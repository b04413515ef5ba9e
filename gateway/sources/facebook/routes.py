"""`GET /facebook` (Meta's verification challenge) and `POST /facebook` (signed events)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.sources.facebook import signature
from gateway.sources.facebook.webhook import parse_envelope


async def verify(request: Request) -> Response:
    secret = request.app.state.settings.facebook_webhook_secret
    params = request.query_params
    token = params.get("hub.verify_token", "")
    if (
        secret
        and params.get("hub.mode") == "subscribe"
        and hmac.compare_digest(token.encode(), secret.encode())
    ):
        return PlainTextResponse(params.get("hub.challenge", ""))
    return JSONResponse({"message": "webhook verification failed"}, status_code=403)


async def receive(request: Request) -> Response:
    """Check the signature, store every event, apply it, then answer: nothing is acked unstored."""
    settings = request.app.state.settings
    if not settings.facebook_app_secret:
        return JSONResponse(
            {"message": "FACEBOOK_APP_SECRET is not set: unsigned webhook calls are refused"},
            status_code=503,
        )
    body = await request.body()
    header = request.headers.get("x-hub-signature-256")
    if not header:
        return JSONResponse({"message": "X-Hub-Signature-256 header is missing"}, status_code=401)
    if not signature.is_valid(settings.facebook_app_secret, body, header):
        return JSONResponse({"message": "X-Hub-Signature-256 does not match the body"},
                            status_code=403)
    events = parse_envelope(body)
    await request.app.state.gateway.ingest.ingest(events)
    return PlainTextResponse("EVENT_RECEIVED")


routes = [
    Route("/facebook", verify, methods=["GET"], name="facebook_verify"),
    Route("/facebook", receive, methods=["POST"], name="facebook_receive"),
]
