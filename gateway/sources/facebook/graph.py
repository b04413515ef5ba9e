"""Graph API client over httpx: the only code that talks to Meta.

Page tokens travel as the `access_token` parameter, as Meta documents. httpx logs request URLs at
INFO level, so `gateway.logs` keeps the httpx loggers at WARNING: no token reaches a log.

Tokens go to Meta and nowhere else. Ids that become path segments (page ids, PSIDs) come from
webhooks and requests, so the client itself refuses any that is not a Graph API id, quotes every
segment, and sends nothing whose final URL is not under `FACEBOOK_GRAPH_API_URL` (same scheme,
host and port, below its path, plain segments only): an id such as `http://elsewhere/x`,
`//elsewhere/x` or `../x` is refused (`UpstreamRefused`) before any request is made.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import httpx

from gateway.domain import is_graph_id
from gateway.errors import UpstreamError, UpstreamRefused, UpstreamUnavailable

log = logging.getLogger(__name__)

# Messenger webhook fields the app subscribes a page to (the ones Airy subscribes to).
SUBSCRIBED_FIELDS = (
    "messages,messaging_postbacks,message_echoes,message_deliveries,message_reads,"
    "message_reactions,messaging_referrals,messaging_optins,standby,messaging_handovers,"
    "message_edits"
)

# Graph error codes that say "try again later": unknown/service errors, throttling and rate limits.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80006})
# `channels.facebook.explore` reads at most this many pages of `/me/accounts` (100 pages each).
MAX_PAGES = 50
THREAD_CONTROL_ACTIONS = ("pass_thread_control", "take_thread_control", "request_thread_control")
# Every path segment this client asks for below the base URL: `me`, `accounts`, `messages`,
# `subscribed_apps`, the thread control actions and ids of digits.
PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


class GraphClient:
    """Calls the Graph API. Errors come out as `UpstreamRefused` or `UpstreamUnavailable`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "messenger-gateway"},
        )
        self._base = self._http.base_url  # ends with "/"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_page(self, page_id: str, token: str) -> dict[str, Any]:
        """The page's name and picture URL."""
        data = await self._call(
            "GET", _path(("page id", page_id)), token, params={"fields": "id,name,picture{url}"}
        )
        return {"id": str(data.get("id", page_id)), "name": data.get("name"),
                "image_url": _picture_url(data.get("picture"))}

    async def list_pages(self, user_token: str) -> list[dict[str, Any]]:
        """Every page the user manages (`/me/accounts`), following Meta's paging cursors.

        The next page is asked for with `after=<cursor>` on our own base URL rather than by
        fetching `paging.next` as given, so a reply can never point the gateway elsewhere.
        """
        pages: list[dict[str, Any]] = []
        params = {"fields": "id,name,picture{url}", "limit": "100"}
        for _ in range(MAX_PAGES):
            data = await self._call("GET", "me/accounts", user_token, params=params)
            for item in data.get("data") or []:
                if isinstance(item, dict) and item.get("id"):
                    pages.append({"id": str(item["id"]), "name": item.get("name"),
                                  "image_url": _picture_url(item.get("picture"))})
            paging = data.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
            if not isinstance(after, str) or not after:
                break
            params = {**params, "after": after}
        return pages

    async def subscribe_app(self, page_id: str, token: str) -> None:
        """Have Meta send this page's Messenger events to the app's webhook."""
        await self._call(
            "POST", _path(("page id", page_id), "subscribed_apps"), token,
            params={"subscribed_fields": SUBSCRIBED_FIELDS},
        )

    async def unsubscribe_app(self, page_id: str, token: str) -> None:
        await self._call("DELETE", _path(("page id", page_id), "subscribed_apps"), token)

    async def get_profile(self, psid: str, token: str) -> dict[str, Any]:
        """A person's name and picture, as far as the page may see them."""
        data = await self._call(
            "GET", _path(("contact id", psid)), token,
            params={"fields": "first_name,last_name,profile_pic"},
        )
        name = " ".join(
            str(part) for part in (data.get("first_name"), data.get("last_name")) if part
        )
        return {"display_name": name or data.get("name") or None,
                "avatar_url": data.get("profile_pic")}

    async def send_message(
        self,
        token: str,
        recipient_id: str,
        message: Any,
        *,
        messaging_type: str = "RESPONSE",
        tag: str | None = None,
    ) -> str:
        """Send API: deliver `message` to the person; returns Meta's message id."""
        if not is_graph_id(recipient_id):
            raise UpstreamRefused("the recipient id is not a Graph API id (1 to 32 digits)")
        body: dict[str, Any] = {
            "recipient": {"id": recipient_id},
            "messaging_type": messaging_type,
            "message": message,
        }
        if tag:
            body["tag"] = tag
        data = await self._call("POST", "me/messages", token, json=body)
        message_id = data.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise UpstreamUnavailable("the Send API answered without a message_id")
        return message_id

    async def upload_attachment(self, token: str, type: str, filename: str, content_type: str,
                                data: bytes) -> str:
        """Attachment Upload API: the file goes to Meta once, as multipart `filedata`, marked
        reusable; returns Meta's `attachment_id` (valid for this page only)."""
        message = {"attachment": {"type": type, "payload": {"is_reusable": True}}}
        answer = await self._call(
            "POST", "me/message_attachments", token,
            form={"message": json.dumps(message)},
            files={"filedata": (filename, data, content_type)},
        )
        attachment_id = answer.get("attachment_id")
        if not isinstance(attachment_id, str) or not attachment_id:
            raise UpstreamUnavailable("the Attachment Upload API answered without an "
                                      "attachment_id")
        return attachment_id

    async def thread_control(
        self, action: str, token: str, recipient_id: str, *,
        target_app_id: str | None = None, metadata: str | None = None,
    ) -> None:
        """Handover protocol: `/me/<action>` for one person's thread, where `action` is
        pass_thread_control (to `target_app_id`), take_thread_control or
        request_thread_control."""
        if action not in THREAD_CONTROL_ACTIONS:
            raise ValueError(f"not a thread control action: {action}")
        if not is_graph_id(recipient_id):
            raise UpstreamRefused("the recipient id is not a Graph API id (1 to 32 digits)")
        body: dict[str, Any] = {"recipient": {"id": recipient_id}}
        if target_app_id is not None:
            if not is_graph_id(target_app_id):
                raise UpstreamRefused("the target app id is not a Graph API id")
            body["target_app_id"] = target_app_id
        if metadata:
            body["metadata"] = metadata
        await self._call("POST", f"me/{action}", token, json=body)

    async def sender_action(self, token: str, recipient_id: str, action: str) -> None:
        """Send API: a sender action (typing_on, typing_off, mark_seen) to the person; Meta
        answers the recipient only, no message id: it is not a message."""
        if not is_graph_id(recipient_id):
            raise UpstreamRefused("the recipient id is not a Graph API id (1 to 32 digits)")
        await self._call("POST", "me/messages", token,
                         json={"recipient": {"id": recipient_id}, "sender_action": action})

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        form: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        query = {**(params or {}), "access_token": token}
        request = self._http.build_request(method, path, params=query, json=json, data=form,
                                           files=files)
        if not self._is_graph_url(request.url):
            raise UpstreamRefused("refused to call a URL outside FACEBOOK_GRAPH_API_URL")
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException:
            raise UpstreamUnavailable("the Graph API did not answer in time") from None
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"the Graph API could not be reached ({type(exc).__name__})"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict) and "error" not in data:
            return data
        raise _error_from(response.status_code, data)

    def _is_graph_url(self, url: httpx.URL) -> bool:
        """Is `url` below the base URL, made of plain segments (no dots, no escapes)?"""
        base = self._base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            return False
        path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
        prefix = base.raw_path.decode("ascii", "replace")
        if not path.startswith(prefix):
            return False
        return all(PLAIN_SEGMENT.fullmatch(part) for part in path[len(prefix):].split("/"))


def _path(*segments: str | tuple[str, str]) -> str:
    """A path below the base URL: each id (given as (what, id)) checked to be a Graph API id,
    each segment quoted."""
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, tuple):
            what, segment = segment
            if not is_graph_id(segment):
                raise UpstreamRefused(f"the {what} is not a Graph API id (1 to 32 digits)")
        parts.append(quote(segment, safe=""))
    return "/".join(parts)


def _error_from(status: int, data: Any) -> UpstreamError:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        kind = UpstreamUnavailable if status >= 500 or status == 429 else UpstreamRefused
        return kind(f"the Graph API answered HTTP {status}", http_status=status)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or f"Graph API error (HTTP {status})")
    transient = status >= 500 or status == 429 or code in TRANSIENT_CODES or bool(
        error.get("is_transient")
    )
    kind = UpstreamUnavailable if transient else UpstreamRefused
    trace = error.get("fbtrace_id")
    return kind(
        message,
        graph_code=code,
        graph_subcode=subcode,
        http_status=status,
        fbtrace_id=str(trace) if trace else None,
    )


def _picture_url(picture: Any) -> str | None:
    """`picture{url}` comes back as `{"data": {"url": ...}}`."""
    if isinstance(picture, dict) and isinstance(picture.get("data"), dict):
        url = picture["data"].get("url")
        return url if isinstance(url, str) else None
    return None
