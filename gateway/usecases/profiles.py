"""Contacts' profiles: fetched from the Graph API by a worker, retried with backoff.

The pass also makes the new conversation's contact (`contacts.contact_of`) before it fetches:
the job is queued exactly once per new conversation and taken again after a crash, and making
the contact is idempotent, so each conversation's person becomes a contact once, fetched or not.
"""

from __future__ import annotations

import logging

from gateway.domain import (
    now_ms,
)
from gateway.errors import (
    Conflict,
    UpstreamError,
    UpstreamRefused,
)
from gateway.usecases.base import (
    UNCOUNTED,
    UseCase,
    backoff,
    lease_ms,
    note_token_refusal,
    subject_missing,
)
from gateway.usecases.contacts import contact_of, name_contact

log = logging.getLogger(__name__)

# Meta refusing a profile (no permission, person gone) this often is taken as final; outages
# and rate limits are retried for as long as they last.
PROFILE_MAX_REFUSALS = 5


class Profiles(UseCase):
    """The profile worker's pass: each due profile fetched once, refusals given up after a few."""

    async def fetch_due(self) -> int:
        """Fetch the contact profiles that are due; a failure is retried later with backoff."""
        tried = 0
        lease = lease_ms(self.settings)
        while not self.running.stopping and (
                job := await self.store.profile_jobs.claim(now_ms(), lease)):
            tried += 1
            conversation = await self.store.conversations.get(job.id)
            if conversation is None:
                await subject_missing(self.store.profile_jobs, job)
                continue
            if job.data.get(UNCOUNTED):  # stored by an apply that stopped before counting it
                await self.store.conversations.count_new(conversation)
                await self.store.profile_jobs.forget(job.id, UNCOUNTED)
            attempts = job.attempts + 1
            channel = await self.store.channels.get(conversation.channel_id)
            try:
                await contact_of(self.store, conversation, channel)
            except Conflict as exc:  # its contact is stored unreadable: the profile still comes
                log.warning("contact of conversation %s: %s", conversation.id, exc.message)
            try:
                if channel is None or not channel.connected:
                    raise UpstreamRefused("the conversation's channel is disconnected")
                profile = await self.graph.get_profile(conversation.contact.id, channel.page_token)
            except UpstreamError as exc:
                await self.store.conversations.profile_failed(conversation.id, exc.message)
                if channel is not None:
                    await note_token_refusal(self.store, channel, exc)
                if not exc.transient and attempts >= PROFILE_MAX_REFUSALS:
                    log.warning("profile of conversation %s: refused %d times (%s); giving up",
                                conversation.id, attempts, exc.message)
                    await self.store.profile_jobs.done(job.id)
                    continue
                delay = backoff(self.settings, attempts)
                log.warning("profile of conversation %s: attempt %d failed (%s), retrying in %.0fs",
                            conversation.id, attempts, exc.message, delay)
                await self.store.profile_jobs.retry_at(
                    job.id, now_ms() + int(delay * 1000), attempts
                )
                continue
            await self.store.conversations.profile_fetched(
                conversation.id, profile.get("display_name"), profile.get("avatar_url")
            )
            await name_contact(self.store, conversation.id, profile.get("display_name"),
                               profile.get("avatar_url"))
            await self.store.profile_jobs.done(job.id)
        return tried
