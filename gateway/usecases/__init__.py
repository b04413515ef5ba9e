"""The use-cases, one module per concern. REST routes, GraphQL resolvers, the webhook and the
background loops call these, and only these (`UseCases`, built once by `build`)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.usecases.base import Deps, GraphApi
from gateway.usecases.channels import Channels
from gateway.usecases.contacts import Contacts
from gateway.usecases.conversations import Conversations
from gateway.usecases.handover import Handover
from gateway.usecases.ingest import Ingest
from gateway.usecases.messages import Messages
from gateway.usecases.metadata import Metadata
from gateway.usecases.profiles import Profiles
from gateway.usecases.senderactions import SenderActions
from gateway.usecases.tags import Tags
from gateway.usecases.webhooks import Webhooks, check_webhook_headers

__all__ = ["Deps", "GraphApi", "UseCases", "build", "check_webhook_headers"]


@dataclass(frozen=True)
class UseCases:
    channels: Channels
    contacts: Contacts
    conversations: Conversations
    messages: Messages
    tags: Tags
    metadata: Metadata
    webhooks: Webhooks
    profiles: Profiles
    ingest: Ingest
    handover: Handover
    sender_actions: SenderActions


def build(deps: Deps) -> UseCases:
    messages = Messages(deps)
    sender_actions = SenderActions(deps, messages.limiter)  # paced with the page's sends
    return UseCases(
        channels=Channels(deps), contacts=Contacts(deps),
        conversations=Conversations(deps, on_read=sender_actions.seen_after_read),
        messages=messages, tags=Tags(deps), metadata=Metadata(deps), webhooks=Webhooks(deps),
        profiles=Profiles(deps), ingest=Ingest(deps), handover=Handover(deps),
        sender_actions=sender_actions,
    )
