"""Webhook bodies in the formats Meta documents: the sandbox's builders (gateway/sandbox/payloads.py),
under the names the tests use."""

from gateway.sandbox.payloads import (
    attachment,
    delivery,
    echo,
    envelope,
    mid,
    postback,
    reaction,
    read,
    signed,
    text,
    ts,
)

__all__ = ["attachment", "delivery", "echo", "envelope", "mid", "postback", "reaction", "read",
           "signed", "text", "ts"]
