"""The STOMP frame codec (`gateway.stomp.frames`): what it writes it reads back, in every version
and however the bytes are split; header escaping in 1.1 and 1.2, none in 1.0 nor in CONNECT; and
no bytes at all make it raise anything but FrameError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stomp.frames import VERSIONS, Frame, FrameError, Parser, encode

COMMANDS = st.sampled_from(["SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "MESSAGE",
                            "ERROR", "RECEIPT", "DISCONNECT"])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


def header_text(version: str) -> st.SearchStrategy[str]:
    """What a header may hold in `version`: anything but NUL in 1.2; nor a CR in 1.1 (which has
    no escape for it); nor a line break in 1.0."""
    banned = "\0" + {"1.0": "\r\n", "1.1": "\r", "1.2": ""}[version]
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=banned),
                   max_size=20)


@st.composite
def frames(draw, version: str) -> Frame:
    names = header_text(version)
    if version == "1.0":
        names = names.filter(lambda name: ":" not in name)
    headers = draw(st.lists(st.tuples(names, header_text(version)), max_size=6))
    headers = [(name, value) for name, value in headers if name != "content-length"]
    body = draw(st.binary(max_size=60))
    if b"\0" in body or draw(st.booleans()):
        headers.append(("content-length", str(len(body))))
    return Frame(draw(COMMANDS), tuple(headers), body)


def read_all(data: bytes, version: str, cuts: list[int] = ()) -> list[Frame | None]:
    parser = Parser(10_000, version)
    out: list[Frame | None] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += parser.feed(data[start:cut])
        start = cut
    return out


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_what_is_written_is_read_back_however_the_bytes_are_split(version, data):
    written = data.draw(st.lists(frames(version), min_size=1, max_size=4))
    beats = data.draw(st.lists(st.sampled_from([b"", b"\n", b"\r\n"]), min_size=len(written),
                               max_size=len(written)))
    stream = b"".join(encode(frame, version) + beat for frame, beat in zip(written, beats))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=5))
    read = read_all(stream, version, cuts)
    assert [item for item in read if item is not None] == written
    assert read.count(None) == sum(beat != b"" for beat in beats)


def test_headers_are_escaped_in_1_1_and_1_2_and_not_in_1_0():
    frame = Frame("MESSAGE", (("a:b", "x\ny:z\\w"),))
    assert encode(frame, "1.2").startswith(b"MESSAGE\na\\cb:x\\ny\\cz\\\\w\n")
    assert encode(Frame("MESSAGE", (("k", "c\rr"),)), "1.2").startswith(b"MESSAGE\nk:c\\rr\n")
    assert encode(Frame("MESSAGE", (("k", "v:w\\x"),)), "1.0") == b"MESSAGE\nk:v:w\\x\n\n\0"
    # Read as the version says: 1.0 keeps a backslash as it is, 1.1 and 1.2 unescape.
    raw = b"SEND\nk:a\\cb\n\n\0"
    assert Parser(100, "1.0").feed(raw)[0].get("k") == "a\\cb"
    assert Parser(100, "1.2").feed(raw)[0].get("k") == "a:b"
    # CONNECT's headers are never escaped, whatever the version agreed.
    assert Parser(100, "1.2").feed(b"CONNECT\npasscode:a\\b\n\n\0")[0].get("passcode") == "a\\b"


def test_what_a_version_cannot_carry_is_refused():
    with pytest.raises(FrameError):
        encode(Frame("MESSAGE", (("k", "two\nlines"),)), "1.0")
    with pytest.raises(FrameError):
        encode(Frame("MESSAGE", (("k", "carriage\rreturn"),)), "1.1")
    with pytest.raises(FrameError, match="NUL"):
        encode(Frame("MESSAGE", (("k", "n\0l"),)), "1.2")
    with pytest.raises(FrameError, match="escape"):
        Parser(100, "1.1").feed(b"SEND\nk:\\r\n\n\0")  # \r is 1.2's only
    with pytest.raises(FrameError, match="escape"):
        Parser(100, "1.2").feed(b"SEND\nk:\\t\n\n\0")


def test_the_first_header_of_a_repeated_name_counts():
    frame = Parser(100, "1.2").feed(b"SEND\nk:first\nk:second\n\n\0")[0]
    assert frame.get("k") == "first" and frame.headers == (("k", "first"), ("k", "second"))


@pytest.mark.parametrize("raw, why", [
    (b"send\n\n\0", "command"),
    (b"SEND\nno-colon\n\n\0", "name:value"),
    (b"SEND\ncontent-length:x\n\n\0", "content-length"),
    (b"SEND\ncontent-length:2\n\nabc\0", "NUL"),
    (b"SEND\0", "empty line"),
    (b"SEND\nk:\xff\n\n\0", "UTF-8"),
])
def test_malformed_frames_are_refused_with_the_reason(raw, why):
    with pytest.raises(FrameError, match=why):
        Parser(100, "1.2").feed(raw)


def test_a_frame_may_not_outgrow_the_bound_whole_or_in_parts():
    parser = Parser(64, "1.2")
    with pytest.raises(FrameError, match="larger"):
        parser.feed(b"SEND\n" + b"k:v\n" * 20)
    with pytest.raises(FrameError, match="larger"):
        Parser(64, "1.2").feed(b"SEND\ncontent-length:1000\n\n")


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.binary(max_size=80), max_size=6))
def test_no_bytes_make_the_parser_raise_anything_but_frame_error(version, chunks):
    parser = Parser(200, version)
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except FrameError:
            return


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from([b"SEND\n", b"CONNECT\naccept-version:1.2\n", b"MESSAGE\nk:"]),
       rest=st.binary(max_size=80))
def test_frame_like_bytes_raise_only_frame_error(prefix, rest):
    try:
        Parser(200, "1.2").feed(prefix + rest + b"\0")
    except FrameError:
        pass
