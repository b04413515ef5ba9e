"""`GET /facebook` (Meta's verification challenge) and `POST /facebook` (signed events)."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.sources.facebook import signature
from gateway.sources.facebook.webhook import parse_envelope
from gateway.usecases.applying import Busy

CHALLENGE_PARAMS = ("hub.mode", "hub.verify_token", "hub.challenge")


async def verify(request: Request) -> Response:
    """Meta's challenge: 400 names a missing parameter, 403 a wrong mode or token, and the
    right ones are answered with the challenge."""
    secret = request.app.state.settings.facebook_webhook_secret
    params = request.query_params
    missing = [name for name in CHALLENGE_PARAMS if not params.get(name)]
    if missing:
        return JSONResponse({"message": f"query parameter {', '.join(missing)} is missing"},
                            status_code=400)
    if not secret:
        return JSONResponse({"message": "FACEBOOK_WEBHOOK_SECRET is not set: no challenge is "
                             "answered"}, status_code=403)
    token = params["hub.verify_token"]
    if params["hub.mode"] == "subscribe" and hmac.compare_digest(token.encode(),
                                                                  secret.encode()):
        return PlainTextResponse(params["hub.challenge"])
    return JSONResponse({"message": "webhook verification failed: hub.mode must be subscribe "
                         "and hub.verify_token the FACEBOOK_WEBHOOK_SECRET"}, status_code=403)


async def receive(request: Request) -> Response:
    """Check the signature, store every event, then answer once they are applied or
    WEBHOOK_APPLY_WAIT_MS after the call came (applying goes on in the background): nothing is
    acked unstored. No room for more events in hand: 503 with nothing stored, and Meta tries
    again."""
    started = asyncio.get_running_loop().time()
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
    try:
        waited = asyncio.get_running_loop().time() - started  # reading and checking the body
        await request.app.state.gateway.ingest.ingest(
            events, wait=max(settings.webhook_apply_wait_ms / 1000 - waited, 0))
    except Busy as exc:
        return JSONResponse({"message": exc.message}, status_code=503,
                            headers={"Retry-After": "1"})
    return PlainTextResponse("EVENT_RECEIVED")


routes = [
    Route("/facebook", verify, methods=["GET"], name="facebook_verify"),
    Route("/facebook", receive, methods=["POST"], name="facebook_receive"),
]
