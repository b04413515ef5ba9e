"""Uploaded attachments: each file's record (`attachments`), its bytes in a GridFS bucket of its
own (`attachment_files`), and the `attachment_id` Meta gave it for each page (`meta_attachments`:
an attachment_id is valid for the page that uploaded it only).

The record is a collection of its own rather than the GridFS files document's `metadata`: nx-27017
serves `<bucket>.files` itself and does not apply updates to it. Every read is by `_id` (the
GridFS bucket reads its chunks by `files_id` and `n`, which it indexes itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.errors import DuplicateKeyError

from gateway.store.documents import read, validate
from gateway.store.ports import Attachment

BUCKET = "attachment_files"
CHUNK_BYTES = 255 * 1024  # GridFS's default


class AttachmentRepo:
    def __init__(self, db) -> None:
        self.c = db.attachments
        self.meta = db.meta_attachments
        self.files = AsyncGridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)

    async def save(self, attachment: Attachment, source: BinaryIO) -> None:
        """The bytes first: a record is never stored without its file."""
        await self.files.upload_from_stream_with_id(
            attachment.id, attachment.filename, source,
            metadata={"content_type": attachment.content_type})
        await self.c.insert_one({
            "_id": attachment.id, "type": attachment.type, "filename": attachment.filename,
            "content_type": attachment.content_type, "size": attachment.size,
            "created_at": attachment.created_at,
        })

    async def get(self, attachment_id: str) -> Attachment | None:
        return read("attachments", await self.c.find_one({"_id": attachment_id}), _to_attachment)

    async def read(self, attachment_id: str) -> bytes | None:
        try:
            stream = await self.files.open_download_stream(attachment_id)
        except NoFile:
            return None
        return await stream.read()

    async def meta_id(self, attachment_id: str, page_id: str) -> str | None:
        doc = await self.meta.find_one({"_id": _meta_key(attachment_id, page_id)})
        value = doc.get("attachment_id") if doc else None
        return value if isinstance(value, str) and value else None

    async def keep_meta_id(self, attachment_id: str, page_id: str, meta_id: str) -> None:
        """The first kept stays (two sends that uploaded at once both work with either)."""
        try:
            await self.meta.insert_one({"_id": _meta_key(attachment_id, page_id),
                                        "attachment_id": meta_id})
        except DuplicateKeyError:
            pass


def _meta_key(attachment_id: str, page_id: str) -> str:
    return f"{attachment_id}/{page_id}"


def _to_attachment(doc: Mapping[str, Any]) -> Attachment:
    return validate(Attachment, {
        "id": doc["_id"], "type": doc.get("type"), "filename": doc.get("filename"),
        "content_type": doc.get("content_type"), "size": doc.get("size"),
        "created_at": doc.get("created_at"),
    })
