"""Attachments by upload, end to end: `POST /media.upload` and GraphQL's `uploadAttachment` (the
GraphQL multipart request spec) keep the file in GridFS on nx-27017; a send naming it uploads it to
Meta (the Graph API stand-in) once per page and is delivered; limits, types and cross-site
uploads are refused."""

from __future__ import annotations

import json
import uuid

import pytest
from gridfs import GridFSBucket
from pymongo import MongoClient

from tests.conftest import connect_page, wait_for
from tests.test_sending import settled, start_conversation

PREFLIGHT = {"Apollo-Require-Preflight": "true"}
PDF = b"%PDF-1.4\n" + b"0123456789abcdef" * 20_000  # 320 KB: two GridFS chunks of 255 KiB


def upload(gw, data: bytes, content_type: str, filename: str = "f", headers=None, **fields):
    return gw.http.post("/media.upload", files={"file": (filename, data, content_type)},
                        data=fields, headers=PREFLIGHT if headers is None else headers)


def graphql_upload(gw, data: bytes, content_type: str, kind: str, headers=None):
    """The GraphQL multipart request spec: `operations`, `map`, then the file part."""
    operations = {"query": "mutation ($file: Upload!, $type: AttachmentType!) { "
                           "uploadAttachment(file: $file, type: $type) { id type filename "
                           "contentType size createdAt } }",
                  "variables": {"file": None, "type": kind}}
    return gw.http.post("/graphql", data={"operations": json.dumps(operations),
                                          "map": json.dumps({"0": ["variables.file"]})},
                        files={"0": ("report.pdf", data, content_type)},
                        headers=PREFLIGHT if headers is None else headers)


def sent_attachment(id_: str, kind: str = "file") -> dict:
    return {"attachment": {"type": kind, "payload": {"attachment_id": id_}}}


def database(start_gateway):
    name = "t_upload_" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    return name, start_gateway(database=name)


def test_rest_upload_is_sent_once_per_page_and_delivered(start_gateway, graph, nx_url):
    name, gw = database(start_gateway)
    conversation = start_conversation(gw, graph)
    answer = upload(gw, PDF, "application/pdf", "C:\\Users\\ada\\invoice 42.pdf")
    assert answer.status_code == 200, answer.text
    stored = answer.json()
    assert set(stored) == {"id", "type", "filename", "content_type", "size", "created_at"}
    assert (stored["type"], stored["filename"], stored["content_type"], stored["size"]) == (
        "file", "invoice 42.pdf", "application/pdf", len(PDF))

    # GridFS on nx-27017 holds the bytes, in chunks of its own bucket.
    with MongoClient(nx_url) as client:
        bucket = GridFSBucket(client[name], bucket_name="attachment_files")
        assert bucket.open_download_stream(stored["id"]).read() == PDF
        chunks = client[name]["attachment_files.chunks"].find({"files_id": stored["id"]})
        assert sorted(chunk["n"] for chunk in chunks) == [0, 1]

    first = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                       "message": sent_attachment(stored["id"])})
    assert first.status_code == 200, first.text
    assert first.json()["content"] == sent_attachment(stored["id"])
    assert settled(gw, conversation["id"], first.json()["id"])["state"] == "delivered"
    [(meta_id, received)] = graph.attachments.items()
    assert received["data"] == PDF and received["type"] == "file"
    assert received["filename"] == "invoice 42.pdf" and received["content_type"] == \
        "application/pdf"
    second = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                        "message": sent_attachment(stored["id"])})
    assert settled(gw, conversation["id"], second.json()["id"])["state"] == "delivered"
    assert len(graph.calls_of("upload")) == 1  # reused, not uploaded again
    assert [c.json["message"]["attachment"]["payload"]["attachment_id"]
            for c in graph.calls_of("send")] == [meta_id, meta_id]

    # Another page: Meta's id is per page, so the file goes up again for it.
    other = start_conversation(gw, graph, psid="2002", channel=connect_page(gw, graph))
    third = gw.post("/messages.send", {"conversation_id": other["id"],
                                       "message": sent_attachment(stored["id"])})
    assert settled(gw, other["id"], third.json()["id"])["state"] == "delivered"
    assert len(graph.calls_of("upload")) == 2


def test_graphql_multipart_upload_then_send_message(gateway, graph):
    conversation = start_conversation(gateway, graph)
    answer = graphql_upload(gateway, PDF, "application/pdf", "FILE")
    assert answer.status_code == 200, answer.text
    uploaded = answer.json()["data"]["uploadAttachment"]
    assert (uploaded["type"], uploaded["filename"], uploaded["contentType"], uploaded["size"]) \
        == ("FILE", "report.pdf", "application/pdf", len(PDF))
    sent = gateway.post("/graphql", {"query": "mutation ($input: SendMessageInput!) { "
                                              "sendMessage(input: $input) { id } }",
                                     "variables": {"input": {
                                         "conversationId": conversation["id"],
                                         "message": {"attachmentId": uploaded["id"]}}}})
    assert "errors" not in sent.json(), sent.text
    message_id = sent.json()["data"]["sendMessage"]["id"]
    assert settled(gateway, conversation["id"], message_id)["state"] == "delivered"
    [received] = graph.attachments.values()
    assert received["data"] == PDF and received["type"] == "file"


def test_an_upload_over_the_limit_is_refused_and_nothing_stored(start_gateway, graph, nx_url):
    name, gw = database(start_gateway)
    gw.stop()
    gw = start_gateway(database=name, ATTACHMENT_MAX_BYTES="4096")
    just_over = upload(gw, b"x" * 4097, "text/plain", "notes.txt")
    assert just_over.status_code == 413
    assert just_over.json()["message"] == ("the file is 4097 bytes; an attachment may be at "
                                           "most 4096 bytes (ATTACHMENT_MAX_BYTES)")
    far_over = upload(gw, PDF, "application/pdf")  # past the body limit: not even read
    assert far_over.status_code == 413 and "larger than" in far_over.json()["message"]
    over_graphql = graphql_upload(gw, b"y" * 5000, "application/pdf", "FILE").json()
    assert over_graphql["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    with MongoClient(nx_url) as client:
        db = client[name]
        for collection in ("attachments", "attachment_files.files", "attachment_files.chunks"):
            assert db[collection].find_one() is None, collection
    assert upload(gw, b"x" * 4096, "text/plain").status_code == 200  # at the limit: taken


@pytest.mark.parametrize(("content_type", "fields", "message"), [
    ("text/html", {}, "content_type: an attachment may be"),
    ("application/pdf", {"type": "image"}, "content_type: an image attachment may be "
                                           "image/gif, image/jpeg, image/png; got "
                                           "application/pdf"),
    ("image/png", {"type": "sticker"}, "type: Input should be"),
])
def test_a_type_not_allowed_is_refused(shared_gateway, content_type, fields, message):
    answer = upload(shared_gateway, b"<html></html>", content_type, **fields)
    assert answer.status_code == 400 and answer.json()["message"].startswith(message), answer.text


def test_graphql_refuses_a_type_not_allowed(shared_gateway):
    answer = graphql_upload(shared_gateway, b"<html>", "text/html", "IMAGE").json()
    assert answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "an image attachment may be" in answer["errors"][0]["message"]


def test_a_body_without_a_file_or_naming_no_upload_is_refused(shared_gateway, graph):
    no_file = shared_gateway.http.post("/media.upload", data={"type": "image"},
                                       files={"other": ("a.png", b"x", "image/png")},
                                       headers=PREFLIGHT)
    assert no_file.status_code == 400 and "multipart field `file`" in no_file.json()["message"]
    conversation = start_conversation(shared_gateway, graph)
    unknown = shared_gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                                     "message": sent_attachment("no-such")})
    assert unknown.status_code == 400 and "no attachment 'no-such' was uploaded" in \
        unknown.json()["message"]


@pytest.mark.parametrize("path", ["/media.upload", "/graphql"])
def test_a_cross_site_multipart_post_is_refused(shared_gateway, path):
    """A page may send multipart/form-data anywhere without a preflight (an HTML form does):
    only a header that needs one lets an upload in."""
    http = shared_gateway.http
    files = {"file": ("a.pdf", b"%PDF", "application/pdf")}
    foreign = http.post(path, files=files, headers={"Origin": "https://evil.example",
                                                    "Sec-Fetch-Site": "cross-site"})
    assert foreign.status_code == 403
    # Even without an Origin (or from the gateway's own), no preflight header: refused.
    for headers in ({}, {"Origin": shared_gateway.url}):
        bare = http.post(path, files=files, headers=headers)
        assert bare.status_code == 415, bare.text
        assert "Apollo-Require-Preflight" in bare.json()["message"]
    # Multipart elsewhere stays refused, header or not.
    assert http.post("/messages.send", files=files, headers=PREFLIGHT).status_code == 415


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.test_sandbox import Sandbox

    process = Sandbox(tmp_path_factory.mktemp("sandbox")).start()
    yield process
    process.stop()


def test_the_sandbox_takes_a_file_larger_than_a_json_body(sandbox):
    """--sandbox: the gateway's sender posts the file to the simulator inside the same gateway,
    past MAX_BODY_BYTES (1 MiB) and as multipart, which only a server (no Origin) may."""
    from gateway.sandbox.server import psid_of

    ada = psid_of("Ada Lovelace")
    assert sandbox.post("/sandbox/api/message", {"psid": ada, "text": "The PDF?"}).status_code \
        == 200
    conversation = wait_for(lambda: sandbox.conversation_of("Ada Lovelace"))
    big = PDF * 5  # 1.6 MB
    stored = sandbox.http.post("/media.upload", headers=PREFLIGHT,
                               files={"file": ("prices.pdf", big, "application/pdf")})
    assert stored.status_code == 200, stored.text
    sent = sandbox.post("/messages.send", {"conversation_id": conversation["id"],
                                           "message": sent_attachment(stored.json()["id"])})
    done = wait_for(lambda: next((m for m in sandbox.messages(conversation["id"])
                                  if m["id"] == sent.json()["id"] and m["state"] != "pending"),
                                 None))
    assert done["state"] == "delivered", done
    thread = sandbox.http.get("/sandbox/api/thread", params={"psid": ada}).json()["messages"]
    assert thread[-1]["from"] == "page" and thread[-1]["text"] == "[file]"
    # A page cannot post a form to the simulator's upload path.
    upload_path = "/sandbox/graph/v21.0/me/message_attachments"
    files = {"filedata": ("a.pdf", b"%PDF", "application/pdf")}
    assert sandbox.http.post(upload_path, files=files,
                             headers={"Origin": sandbox.http.base_url.scheme + "://"
                                      + sandbox.http.base_url.netloc.decode()}).status_code == 415
