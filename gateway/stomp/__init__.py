"""Airy's realtime endpoint: STOMP over a websocket at `/ws.communication`."""

from __future__ import annotations

from gateway.bus import EventBus
from gateway.config import Settings
from gateway.stomp.endpoint import StompEndpoint
from gateway.stomp.events import Feed

__all__ = ["StompEndpoint", "stomp_app"]


def stomp_app(settings: Settings, bus: EventBus) -> StompEndpoint:
    """The endpoint, with the limits GraphQL's websockets have."""
    return StompEndpoint(
        Feed(bus), system_token=settings.system_token,
        max_frame_bytes=settings.ws_max_message_bytes,
        connect_timeout_seconds=settings.ws_init_timeout_seconds,
        max_subscriptions=settings.ws_max_subscriptions,
        queue_size=settings.subscription_queue_size,
        queue_bytes=int(settings.subscription_queue_mb * 2**20),
    )
