"""Attachments by upload: kept in the store, sent to Meta once per page by the Attachment Upload
API, then named by Meta's attachment_id; refused past ATTACHMENT_MAX_BYTES."""

from __future__ import annotations

import io

import pytest

from gateway.domain import DeliveryState
from gateway.errors import InvalidInput, TooLarge
from tests.unit.conftest import Rig
from tests.unit.test_messages import a_conversation, deliver_all

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def image(attachment_id: str, kind: str | None = "image") -> dict:
    attachment: dict = {"payload": {"attachment_id": attachment_id}}
    if kind:
        attachment["type"] = kind
    return {"attachment": attachment}


async def test_an_upload_reaches_meta_once_per_page_and_is_sent_by_meta_id(rig: Rig):
    conversation_id = await a_conversation(rig)
    upload = await rig.uc.messages.upload("cat.png", "image/png", "image", len(PNG),
                                          io.BytesIO(PNG))
    assert (upload.type, upload.size, upload.filename) == ("image", len(PNG), "cat.png")
    assert await rig.store.attachments.read(upload.id) == PNG

    first = await rig.uc.messages.send(conversation_id, image(upload.id))
    second = await rig.uc.messages.send(conversation_id, image(upload.id, kind=None))
    await deliver_all(rig, conversation_id)

    uploads = rig.fake.calls_of("upload")
    assert len(uploads) == 1  # the second send reused Meta's id
    [(meta_id, stored)] = rig.fake.attachments.items()
    assert stored["data"] == PNG and stored["type"] == "image" and stored["reusable"]
    assert stored["content_type"] == "image/png" and stored["filename"] == "cat.png"
    sends = rig.fake.calls_of("send")
    assert [s.json["message"]["attachment"] for s in sends] == [
        {"type": "image", "payload": {"attachment_id": meta_id}}] * 2
    # What the gateway keeps names its own upload (with the type filled in when left out).
    for sent in (first, second):
        [kept] = [m for m in await rig.messages(conversation_id) if m.id == sent.id]
        assert kept.state is DeliveryState.DELIVERED
        assert kept.content == image(upload.id)

    # Another page gets the file uploaded for it (an attachment_id is per page).
    await rig.connect(page_id="777000", token="other-token", name="Other")
    other = (await rig.write("5151", page_id="777000")).conversation.id
    await rig.uc.messages.send(other, image(upload.id))
    await deliver_all(rig, other)
    assert len(rig.fake.calls_of("upload")) == 2
    assert rig.fake.calls_of("send")[-1].json["message"]["attachment"]["payload"][
        "attachment_id"] != meta_id


async def test_an_upload_over_the_limit_is_refused_and_nothing_kept(rig: Rig):
    limit = rig.settings.attachment_max_bytes
    with pytest.raises(TooLarge, match="ATTACHMENT_MAX_BYTES") as refused:
        await rig.uc.messages.upload("big.bin", "application/pdf", "file", limit + 1,
                                     io.BytesIO(b"x" * (limit + 1)))
    assert refused.value.status == 413
    with pytest.raises(InvalidInput, match="empty"):
        await rig.uc.messages.upload("none.pdf", "application/pdf", "file", 0, io.BytesIO())


async def test_a_send_names_a_stored_upload_of_a_type_it_may_be_sent_as(rig: Rig):
    conversation_id = await a_conversation(rig)
    with pytest.raises(InvalidInput, match="no attachment 'nope' was uploaded"):
        await rig.uc.messages.send(conversation_id, image("nope"))
    upload = await rig.uc.messages.upload("a.pdf", "application/pdf", "file", 3,
                                          io.BytesIO(b"pdf"))
    with pytest.raises(InvalidInput, match="uploaded as 'file'"):
        await rig.uc.messages.send(conversation_id, image(upload.id, kind="image"))
    assert all(m.from_contact for m in await rig.messages(conversation_id))  # nothing queued
    # Meta's own attachment ids (digits) are not ours: they go to Meta as they are.
    await rig.uc.messages.send(conversation_id, image("1857777774821032"))
