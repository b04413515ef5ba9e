"""The one factory that builds the gateway: store, Graph API client, use-cases, workers, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from gateway import rest, web
from gateway.auth import TokenAuth
from gateway.bus import EventBus
from gateway.cache import CacheReads, QueryCache, Reads, json_without_errors
from gateway.changes import REST_READS
from gateway.config import Settings
from gateway.crossorigin import UPLOAD_PATHS, CrossOrigin, allowed_origins
from gateway.errors import GatewayError
from gateway.graphql import graphql_app
from gateway.graphql.reads import store_reads
from gateway.middleware import BodyLimit, RequestId
from gateway.outgoing import Outgoing
from gateway.rest import openapi
from gateway.signals import Running, Signals
from gateway.sources.facebook import routes as facebook_routes
from gateway.sources.facebook.graph import GraphClient
from gateway.stomp import stomp_app
from gateway.store import Store
from gateway.store.embedded import EmbeddedServer
from gateway.store.mongo import check_change_streams
from gateway.store.secrets import TokenCipher
from gateway.usecases import Deps
from gateway.usecases import build as build_usecases
from gateway.websockets import WebsocketLimit
from gateway.workers import Worker

if TYPE_CHECKING:
    from gateway.sandbox.server import Sandbox

log = logging.getLogger("gateway")

# From SIGTERM to exit within 10 s, whatever the store does: uvicorn lets requests and websockets
# under way finish for up to SHUTDOWN_GRACEFUL_SECONDS (cli.py), then the lifespan's shutdown has
# SHUTDOWN_CLEANUP_SECONDS, of which the last SHUTDOWN_STORE_SECONDS are kept for stopping the
# embedded store (SIGTERM, then SIGKILL).
SHUTDOWN_GRACEFUL_SECONDS = 2
SHUTDOWN_CLEANUP_SECONDS = 5.5
SHUTDOWN_STORE_SECONDS = 1.5
SHUTDOWN_EXIT_SECONDS = 1.5  # past the cleanup's deadline: exit whatever still runs
SHUTDOWN_APPLY_SECONDS = 2.5  # of the cleanup: stored webhook events still being applied


# As Airy's API answers a page on an allowed origin (its headers, and ours for request ids).
CORS_METHODS = ["POST", "GET"]
CORS_HEADERS = ["Accept", "Content-Type", "Content-Length", "Accept-Encoding", "X-CSRF-Token",
                "Authorization", "X-Requested-With", "X-XSRF-Token", "X-Request-ID",
                "Apollo-Require-Preflight", "X-Apollo-Operation-Name"]
# Room for a multipart body's boundaries and part headers beside a file of ATTACHMENT_MAX_BYTES.
UPLOAD_ENVELOPE_BYTES = 64 * 1024


class StartupError(RuntimeError):
    """The gateway cannot start as configured; the message says what to change."""


def create_app(
    settings: Settings | None = None,
    *,
    graph_transport: httpx.AsyncBaseTransport | None = None,
    sandbox: Sandbox | None = None,
) -> Starlette:
    """Build the ASGI app. Settings default to the environment, read here once. A `sandbox`
    (messenger-gateway --sandbox) is mounted at /sandbox and started with the gateway."""
    settings = settings or Settings.from_env()
    # Built before the store exists, so that the query cache can be told when the bus is live.
    bus = EventBus(queue_size=settings.subscription_queue_size,
                   queue_bytes=int(settings.subscription_queue_mb * 2**20))
    cache = QueryCache(int(settings.query_cache_mb * 1024 * 1024), live=lambda: bus.live)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded = None
        url = settings.mongodb_url
        if not url:
            embedded = EmbeddedServer(settings.data_dir, settings.store_measure_work)
            await embedded.start()
            url = embedded.url
        try:
            store = await Store.connect(
                url, settings.mongodb_database,
                timeout_ms=int(settings.store_timeout_seconds * 1000),
                cipher=TokenCipher(settings.token_encryption_key), live=lambda: bus.live,
            )
        except PyMongoError as exc:
            if embedded:
                await embedded.stop()
            raise StartupError(
                f"cannot reach the store ({settings.store_description}): "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            ) from None
        try:
            await check_change_streams(store)
        except OperationFailure as exc:
            await store.close()
            if embedded:
                await embedded.stop()
            raise StartupError(
                f"MongoDB at {settings.store_description} cannot open change streams "
                f"({exc.code}: {exc.details.get('errmsg') if exc.details else exc}). Live "
                "subscriptions need them: run MongoDB as a replica set (a single node is "
                "enough: start mongod with --replSet rs0, run rs.initiate() once, and add "
                "?replicaSet=rs0 to MONGODB_URL)."
            ) from None
        store.writes.watch(cache.changed)
        bus.watch(cache.changed)
        bus.watch(store.channels.known.changed)
        await bus.start(store)
        graph = GraphClient(
            settings.graph_api_url, timeout=settings.graph_api_timeout, transport=graph_transport
        )
        signals, running = Signals(), Running()
        usecases = build_usecases(Deps(store, graph, settings, signals, running))
        outgoing = Outgoing(store, settings, usecases.conversations, signals, running)
        poll = settings.worker_poll_seconds
        workers = [
            Worker("sender", usecases.messages.deliver_due, poll, signals.sends),
            Worker("profiles", usecases.profiles.fetch_due, poll, signals.profiles),
            Worker("events", usecases.ingest.apply_unprocessed, max(poll, 30.0)),
            Worker("webhooks", outgoing.deliver_due, poll, signals.deliveries),
        ]
        outgoing.start()
        app.state.gateway = usecases
        app.state.store = store
        app.state.bus = bus
        for worker in workers:
            worker.start()
        if sandbox:  # it connects the demo page once the gateway listens
            await sandbox.start()
        store_text = settings.store_description
        if embedded:
            store_text += f" (Unix socket {embedded.socket_path}, owner only; no TCP port)"
        log.info("Messenger Gateway listening on http://%s:%s (%s), store: %s",
                 settings.host, settings.port,
                 ", ".join(f"{name} {path}" for path, name in web.PAGES.items()), store_text)
        for warning in settings.startup_warnings():
            log.warning(warning)
        try:
            yield
        finally:
            running.stopping = True
            # Webhook events in hand are applied while the workers stop (what is left over is
            # the events worker's, in this process's successor or another).
            applying = asyncio.ensure_future(
                usecases.ingest.applier.finish(SHUTDOWN_APPLY_SECONDS))
            await shut_down(settings, workers, [
                # Sends `messages.send` handed over at once finish as the sender's do.
                ("sends under way", usecases.messages.drain),
                ("webhook events", lambda: applying),
                *([("sandbox", sandbox.stop)] if sandbox else []),
                ("outgoing webhooks", outgoing.stop), ("change streams", bus.stop),
                ("Graph API client", graph.aclose), ("store client", store.close),
            ], embedded)

    graphql = graphql_app(settings)
    routes = [
        *facebook_routes.routes,
        *rest.routes,
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        WebSocketRoute("/ws.communication", stomp_app(settings, bus)),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", lambda request: JSONResponse(openapi.build()), methods=["GET"]),
    ]
    routes += [
        Route("/", web.home, methods=["GET"]),
        Route("/inbox", lambda request: RedirectResponse("/inbox/")),
        Mount("/inbox", web.Inbox(Path(settings.inbox_dir)), name="inbox"),
    ]
    if sandbox:
        routes.append(Mount("/sandbox", sandbox.app, name="sandbox"))
    # The sandbox's Attachment Upload API, which this gateway's sender posts files to.
    sandbox_uploads = (f"{urlsplit(settings.graph_api_url).path}/me/message_attachments",) \
        if sandbox else ()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestId),
            Middleware(WebsocketLimit, max_connections=settings.ws_max_connections),
            Middleware(CrossOrigin, allowed=settings.allowed_origins,
                       server_uploads=sandbox_uploads),
            # Pages on ALLOWED_ORIGINS may call the API from a browser, with its cookie
            # (preflights answered here, before auth; see gateway.crossorigin).
            *([Middleware(CORSMiddleware, allow_methods=CORS_METHODS, max_age=600,
                          allow_origins=sorted(allowed_origins(settings.allowed_origins)),
                          allow_credentials=True, allow_headers=CORS_HEADERS,
                          expose_headers=["X-Request-ID", "X-Query-Cache"])]
              if settings.allowed_origins else []),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       larger={"/facebook": settings.facebook_max_body_bytes},
                       uploads=dict.fromkeys((*UPLOAD_PATHS, *sandbox_uploads),
                                             settings.attachment_max_bytes
                                             + UPLOAD_ENVELOPE_BYTES)),
            Middleware(TokenAuth, token=settings.system_token),
            *([Middleware(CacheReads, cache=cache, reads={
                **{path: Reads() for path in REST_READS},
                "/graphql": Reads(request=store_reads(settings.graphql_max_tokens,
                                                      settings.graphql_cache_size),
                                  answer=json_without_errors),
            })] if cache.max_bytes else []),
        ],
        exception_handlers={
            GatewayError: gateway_error,
            ConnectionFailure: store_unavailable,
            PyMongoError: store_error,
            Exception: unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def shut_down(settings: Settings, workers: list[Worker],
                    steps: list[tuple[str, Callable[[], Awaitable[object]]]],
                    embedded: EmbeddedServer | None) -> None:
    """Stop everything within SHUTDOWN_CLEANUP_SECONDS whatever the store does (away, restarting
    or stopped: the driver may wait for it without end, even to close a cursor while being
    cancelled). Each step gets what the deadline leaves; one that overruns is cancelled and left
    to unwind. The embedded store is stopped last, and killed if it is not gone in time (its
    socket closing then ends whatever still waits on it). Should anything still hold the process
    SHUTDOWN_EXIT_SECONDS after the deadline, it exits there and then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_CLEANUP_SECONDS
    watchdog = threading.Timer(SHUTDOWN_CLEANUP_SECONDS + SHUTDOWN_EXIT_SECONDS, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    kept = SHUTDOWN_STORE_SECONDS if embedded else 0.0  # for stopping the embedded store
    # A Send API call under way may finish (cut off half-way, it would be sent again by the next
    # process), within what the deadline leaves for the rest.
    grace = min(settings.graph_api_timeout + 1, SHUTDOWN_CLEANUP_SECONDS - kept - 1.5)

    async def stop_workers() -> None:
        await asyncio.gather(*(worker.stop(grace) for worker in workers))

    left: list[asyncio.Future] = []  # steps that overran, cancelled and still unwinding
    for what, step in [("background workers", stop_workers), *steps]:
        task = asyncio.ensure_future(step())
        await asyncio.wait([task], timeout=max(deadline - kept - loop.time(), 0.05))
        if not task.done():
            log.warning("shutdown: %s did not stop in time; going on", what)
            task.cancel()
            left.append(task)
        elif not task.cancelled() and task.exception():
            log.warning("shutdown: %s failed to stop (%s); going on", what,
                        type(task.exception()).__name__)
    if embedded:
        await embedded.stop(max(deadline - loop.time(), 1.0))
    if left:
        await asyncio.wait(left, timeout=max(deadline - loop.time(), 0.5))
    if all(task.done() for task in left):
        watchdog.cancel()


def _exit_now() -> None:
    log.error("shutdown: still not done %.0fs after SIGTERM; exiting now",
              SHUTDOWN_GRACEFUL_SECONDS + SHUTDOWN_CLEANUP_SECONDS + SHUTDOWN_EXIT_SECONDS)
    os._exit(1)


async def health(request: Request) -> Response:
    try:
        await request.app.state.store.ping()
    except PyMongoError:
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
    # Webhook events no part of the gateway understands, by kind, since this process started.
    unhandled = dict(request.app.state.gateway.ingest.unhandled)
    return JSONResponse({"status": "ok", "store": "ok",
                         "subscribers": request.app.state.bus.subscriber_count,
                         "unhandled": unhandled})


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return JSONResponse({"message": exc.message}, status_code=exc.status)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unreachable while serving %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse({"message": "the store is unavailable, try again shortly"},
                        status_code=503)


async def store_error(request: Request, exc: Exception) -> Response:
    log.error("store error while serving %s", request.url.path, exc_info=exc)
    return JSONResponse({"message": "the store could not complete the request"}, status_code=503)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error while serving %s", request.url.path, exc_info=exc)
    return JSONResponse({"message": "internal error"}, status_code=500)
