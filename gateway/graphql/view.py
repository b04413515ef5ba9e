"""The `/graphql` endpoint: HTTP (POST and GET), GraphiQL (served offline from the package),
and websockets in both protocols.

Whatever a request carries is checked before strawberry reads it: the body, GET's `variables`
and `extensions`, and websocket frames all pass the REST routes' JSON rule
(`gateway.validation.load_json`: UTF-8, JSON, nesting, what MongoDB can store), a POST body must
be an object, and a subscription asked for over HTTP without a stream (`Accept:` multipart or
SSE, see `gateway.graphql.streams`) is told where the websocket is. Each answers
400 with a message, never a 500 (strawberry let the parser's and its own errors through).
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from gateway.auth import authorised, presented_tokens, token_of
from gateway.errors import InvalidInput
from gateway.graphql.handlers import FrameAdapter, LegacyWSHandler, TransportWSHandler
from gateway.graphql.multiplex import Multiplexer, subscription_test
from gateway.graphql.persisted import BadPersistedQuery, PersistedQueries, PersistedQueryError
from gateway.graphql.streams import (
    FRAMINGS,
    StreamCount,
    Streaming,
    StreamResponse,
    multiplexed,
    one_result,
    running_alone,
)
from gateway.usecases import UseCases
from gateway.validation import load_json
from gateway.web import graphiql_page


class Loaders:
    """Batch lookups, so a page of conversations costs a fixed number of queries.

    Not caching: a websocket lives long, and what a loader returned an hour ago may be stale.
    Each is made when first used: most websockets only subscribe, and never use one.
    """

    __slots__ = ("_usecases", "_channel", "_message")

    def __init__(self, usecases: UseCases) -> None:
        self._usecases = usecases
        self._channel: DataLoader | None = None
        self._message: DataLoader | None = None

    @property
    def channel(self) -> DataLoader:
        if self._channel is None:
            self._channel = DataLoader(self._usecases.channels.by_ids, cache=False)
        return self._channel

    @property
    def message(self) -> DataLoader:
        if self._message is None:
            self._message = DataLoader(self._usecases.messages.by_ids, cache=False)
        return self._message


class GatewayGraphQL(GraphQL):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = FrameAdapter

    def __init__(self, schema, *, system_token: str, max_subscriptions: int,
                 init_timeout_seconds: float, max_tokens: int, cache_size: int,
                 allowed_origins: Sequence[str] = (),
                 multiplexer: Multiplexer | None = None, http_max_subscriptions: int = 1000,
                 queue_size: int = 1000, queue_bytes: int = 4 * 2**20,
                 persisted_queries_bytes: int = 2 * 2**20) -> None:
        super().__init__(
            schema,
            # The websockets' two, and over HTTP Apollo's multipart subscriptions and graphql-sse
            # (strawberry picks one by the Accept header; see gateway.graphql.streams).
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL,
                                    MULTIPART_SUBSCRIPTION_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            max_subscriptions_per_connection=max_subscriptions,
            keep_alive=True,
            keep_alive_interval=15,
            # Both protocols: graphql-transport-ws by strawberry, graphql-ws by LegacyWSHandler.
            connection_init_wait_timeout=timedelta(seconds=init_timeout_seconds),
            # Strawberry checks a websocket's Origin too: the origins CrossOrigin lets through.
            allowed_origins=allowed_origins,
            # uploadAttachment's files (the GraphQL multipart request spec): CrossOrigin takes a
            # multipart body only with a header that needs a preflight, BodyLimit bounds it by
            # ATTACHMENT_MAX_BYTES.
            multipart_uploads_enabled=True,
        )
        self.system_token = system_token
        self.multiplexer = multiplexer  # None: every subscription runs on its own
        self.is_subscription = subscription_test(max_tokens, cache_size)
        self.http_streams = StreamCount(http_max_subscriptions)
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.persisted = PersistedQueries(persisted_queries_bytes)

    def __call__(self, scope: Scope, receive: Receive, send: Send
                 ) -> Coroutine[Any, Any, None]:
        """A websocket goes to strawberry directly: awaited here, each would hold one more
        suspended frame for as long as it lives."""
        if scope["type"] != "http":
            return super().__call__(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:  # strawberry's answer is plain text; clients expect JSON
            response = request_error(exc.status_code, exc.reason)
        except PersistedQueryError as exc:  # Apollo's link reads it from a 200 answer
            response = JSONResponse(exc.answer())
        except Streaming as streaming:
            response = streaming.response
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET carrying a persisted query's hash and no document."""
        return "extensions" not in request.query_params \
            and super().should_render_graphql_ide(request)

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL built into the package (frontend-graphiql/), not strawberry's page, whose
        scripts come from a CDN: this one works offline, sends the headers set in its editor,
        and runs subscriptions over graphql-transport-ws."""
        return graphiql_page()

    def decode_json(self, data: str | bytes) -> object:
        """Bodies and GET's `variables` and `extensions` (frames: `FrameAdapter`)."""
        try:
            return load_json(data)
        except InvalidInput as exc:
            raise HTTPException(400, exc.message) from None

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter
                              ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST" and \
                "application/json" in parse_content_type(request.content_type or "")[0]:
            # strawberry reads an object's fields (and a list as a batch) and fails on the rest
            first = (await request.get_body()).lstrip()[:1]
            if first not in (b"{", b"["):
                self.decode_json(await request.get_body())  # not JSON at all: says so
                raise HTTPException(400, 'the request body must be a JSON object: '
                                         '{"query": "…", "variables": {…}}')
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            try:  # the document of a persisted query's hash (gateway.graphql.persisted)
                data.query = self.persisted.document(data.query, data.extensions)
            except BadPersistedQuery as exc:
                raise HTTPException(400, str(exc)) from None
        return data

    async def execute_operation(
        self, request: Request, request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData], context: Any,
        root_value: Any, sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        """A request asking for a stream (gateway.graphql.streams) is answered with one (raised
        as `Streaming`): a subscription joins its multiplexed group; over SSE a query or a
        mutation is its one result. Over multipart those are answered as JSON, which Apollo's
        Accept header allows."""
        if isinstance(request_data, list) or request_data.protocol not in FRAMINGS:
            return await super().execute_operation(request, request_adapter, request_data,
                                                   context, root_value, sub_response)
        query, name = request_data.query, request_data.operation_name
        if not (isinstance(query, str) and isinstance(name, str | None)
                and self.is_subscription(query, name)):
            plain = GraphQLRequestData(query, request_data.variables, name,
                                       request_data.extensions)
            result = await self.execute_single(request, request_adapter, sub_response, context,
                                               root_value, plain)
            if request_data.protocol != "sse":
                return result
            subscription = one_result(result)
        elif self.multiplexer is not None:
            subscription = multiplexed(self.multiplexer, query, request_data.variables, name,
                                       context)
        else:
            subscription = running_alone(self.schema, query, request_data.variables, name,
                                         context, queue_size=self.queue_size,
                                         queue_bytes=self.queue_bytes)
        raise Streaming(StreamResponse(subscription, FRAMINGS[request_data.protocol],
                                       self.http_streams))

    async def execute_single(self, request: Request, request_adapter: AsyncHTTPRequestAdapter,
                             sub_response: Response, context: Any, root_value: Any,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        query, name = request_data.query, request_data.operation_name
        if isinstance(query, str) and isinstance(name, str | None) \
                and self.is_subscription(query, name):
            self.subscription_over_http(request)
        return await super().execute_single(request, request_adapter, sub_response, context,
                                            root_value, request_data)

    def subscription_over_http(self, request: Request) -> NoReturn:
        """The answer to a subscription sent as a GET or POST: where to open a websocket."""
        url = request.url.replace(scheme="wss" if request.url.scheme == "https" else "ws",
                                  query="", fragment="")
        raise HTTPException(400, f"subscriptions are served over websockets: connect to {url} "
                                 f"with the {GRAPHQL_TRANSPORT_WS_PROTOCOL} (or legacy "
                                 f"{GRAPHQL_WS_PROTOCOL}) subprotocol; or over HTTP, asked for "
                                 'with Accept: multipart/mixed;subscriptionSpec="1.0" (Apollo '
                                 "Client) or Accept: text/event-stream (graphql-sse)")

    # strawberry types the context as None: this view's is a dict (gateway, bus, loaders).
    async def get_context(  # type: ignore[override]
        self, request: Request | WebSocket, response: Any
    ) -> dict[str, Any]:
        state = request.app.state
        return {"request": request, "response": response, "gateway": state.gateway,
                "bus": state.bus, "loaders": Loaders(state.gateway)}

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:  # type: ignore[override]
        """With SYSTEM_TOKEN set, a websocket presents it in connection_init, or on the upgrade
        (Authorization header or `airy_auth_token` cookie)."""
        if not self.system_token:
            return None
        params = context.get("connection_params") or {}
        presented = [token_of(str(value)) for key, value in params.items()
                     if isinstance(key, str) and key.lower() == "authorization"]
        presented += presented_tokens(context["request"].headers.raw)
        if authorised(self.system_token, presented):
            return None
        reason = "the API token is not valid" if presented else \
            'connection_init must carry {"Authorization": "Bearer <token>"}'
        raise ConnectionRejectionError({"message": reason})


def request_error(status: int, message: str) -> Response:
    """A request /graphql refuses: the REST routes' `message`, and GraphQL's `errors` for clients
    that read those."""
    error: dict[str, Any] = {"message": message}
    if status == 400:
        error["extensions"] = {"code": "BAD_REQUEST"}
    return JSONResponse({"message": message, "errors": [error]}, status_code=status)
