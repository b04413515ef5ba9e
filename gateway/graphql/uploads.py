"""`uploadAttachment`: a file sent by the GraphQL multipart request spec, kept as `media.upload`
keeps it (the view takes multipart bodies, with the same limits and preflight header)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload
from strawberry.types import Info

from gateway import inputs
from gateway.domain import moment
from gateway.graphql.content import AttachmentType
from gateway.rest.routes import size_of
from gateway.store.ports import Attachment


@strawberry.type(description="A file uploaded to the gateway. Send it with sendMessage's "
                 "`attachmentId` (REST: message.attachment.payload.attachment_id); it reaches "
                 "Meta once per page.")
class UploadedAttachment:
    id: strawberry.ID
    type: AttachmentType
    filename: str
    content_type: str
    size: int
    created_at: datetime

    @classmethod
    def of(cls, attachment: Attachment) -> UploadedAttachment:
        return cls(id=strawberry.ID(attachment.id), type=AttachmentType(attachment.type),
                   filename=attachment.filename, content_type=attachment.content_type,
                   size=attachment.size, created_at=moment(attachment.created_at))


async def upload_attachment(info: Info, file: Upload, type: AttachmentType
                            ) -> UploadedAttachment:
    upload = inputs.AttachmentUpload.of_part(file, type.value)
    part = cast(UploadFile, file)  # what strawberry's ASGI view hands over for an Upload
    attachment = await info.context["gateway"].messages.upload(
        upload.filename, upload.content_type, upload.kind, size_of(part.file), part.file)
    return UploadedAttachment.of(attachment)
