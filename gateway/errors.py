"""Errors a caller can act on. Adapters map each to a status code or a GraphQL error code."""

from __future__ import annotations


class GatewayError(Exception):
    """Base: `message` is safe to show to the caller."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GatewayError):
    status = 400
    code = "BAD_REQUEST"


class TooLarge(InvalidInput):
    """An upload over its limit."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class NotFound(GatewayError):
    status = 404
    code = "NOT_FOUND"


class Forbidden(GatewayError):
    status = 403
    code = "FORBIDDEN"


class Conflict(GatewayError):
    status = 409
    code = "CONFLICT"


class UpstreamError(GatewayError):
    """The Graph API did not do what was asked. `message` is Meta's own words where it sent any."""

    status = 502
    code = "GRAPH_API_ERROR"
    transient = False

    def __init__(
        self,
        message: str,
        *,
        graph_code: int | None = None,
        graph_subcode: int | None = None,
        http_status: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.graph_code = graph_code
        self.graph_subcode = graph_subcode
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id

    def to_dict(self) -> dict[str, object]:
        """What is kept on a failed message: enough to tell why, nothing secret."""
        return {
            "message": self.message,
            "code": self.graph_code,
            "error_subcode": self.graph_subcode,
            "http_status": self.http_status,
            "fbtrace_id": self.fbtrace_id,
            "transient": self.transient,
        }


class UpstreamRefused(UpstreamError):
    """The Graph API refused the request (bad token, bad page id…): retrying will not help."""

    status = 400
    code = "GRAPH_API_REFUSED"


class UpstreamUnavailable(UpstreamError):
    """The Graph API could not be reached, timed out, failed on its side or rate-limited us."""

    status = 502
    code = "GRAPH_API_UNAVAILABLE"
    transient = True
