"""STOMP frames as the spec writes them (1.0, 1.1 and 1.2): one codec, both ways.

No library on PyPI parses the frames a client sends for a server (stomp.py's and stompman's
parsers read what a server sends, in the versions they speak), so this small one does, checked by
property-based tests (tests/test_stomp_frames.py). What it reads is untrusted: anything that is
not a well-formed frame raises FrameError, and nothing else, whatever the bytes.

A frame is `COMMAND EOL *(name:value EOL) EOL body NUL`, then any number of EOLs (heart-beats,
between frames). EOL is LF; 1.2 allows CRLF, and a CR before an LF is dropped in every version, as
brokers do. Header names and values are escaped in 1.1 and 1.2 (`\\n`, `\\c`, `\\\\`, and 1.2's
`\\r`; any other escape is an error), never in 1.0, nor in CONNECT, STOMP and CONNECTED frames.
When a header repeats, the first one counts. A `content-length` header gives the body's length
(it may then hold NULs); without one the body runs to the first NUL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERSIONS = ("1.0", "1.1", "1.2")
# Frames whose headers are never escaped, in any version (STOMP 1.2, "Value Encoding").
UNESCAPED = frozenset({"CONNECT", "STOMP", "CONNECTED"})
MAX_HEADERS = 100

_ESCAPES = {"1.1": {"\\": "\\\\", "\n": "\\n", ":": "\\c"},
            "1.2": {"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"}}
_UNESCAPES = {version: {escaped[1]: raw for raw, escaped in table.items()}
              for version, table in _ESCAPES.items()}


class FrameError(ValueError):
    """The bytes are not a well-formed STOMP frame; the message says why (never what they held)."""


@dataclass(frozen=True)
class Frame:
    command: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        for name, value in self.headers:
            lookup.setdefault(name, value)  # the first of a repeated header counts
        object.__setattr__(self, "lookup", lookup)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.lookup.get(name, default)


def _escaped(text: str, version: str, command: str) -> str:
    if "\0" in text:
        raise FrameError("a header cannot hold a NUL")
    table = _ESCAPES.get(version) if command not in UNESCAPED else None
    if table is None:
        # Unescaped: a line break would end the header, so none may be in it.
        if "\n" in text or "\r" in text:
            raise FrameError(f"a {command} header cannot hold a line break in STOMP {version}")
        return text
    if version == "1.1" and "\r" in text:
        raise FrameError("a header cannot hold a carriage return in STOMP 1.1")
    return "".join(table.get(char, char) for char in text)


def encode(frame: Frame, version: str) -> bytes:
    """The frame's bytes in `version`. Raises FrameError for a header the version cannot carry
    (a NUL; a line break where there is no escaping; a colon in an unescaped name)."""
    lines = [frame.command]
    for name, value in frame.headers:
        if ":" in name and (version == "1.0" or frame.command in UNESCAPED):
            raise FrameError(f"a header name cannot hold a colon in STOMP {version}")
        lines.append(_escaped(name, version, frame.command) + ":"
                     + _escaped(value, version, frame.command))
    return ("\n".join(lines) + "\n\n").encode() + frame.body + b"\0"


def _unescaped(text: str, version: str, command: str) -> str:
    table = _UNESCAPES.get(version) if command not in UNESCAPED else None
    if table is None or "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escape = next(chars, "")
        if escape not in table:
            raise FrameError(f"a header holds an escape STOMP {version} does not define")
        out.append(table[escape])
    return "".join(out)


def _line(raw: bytes) -> str:
    try:
        return raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("a frame's command and headers must be UTF-8") from None


class Parser:
    """Reads frames from a stream of bytes that may split or join them anyhow, holding at most
    `max_bytes` of a frame not yet whole. `version` is what the headers of frames other than
    CONNECT and STOMP are read in; the endpoint sets it once the version is agreed."""

    def __init__(self, max_bytes: int, version: str = "1.0") -> None:
        self.max_bytes = max_bytes
        self.version = version
        self._buffer = b""

    def feed(self, data: bytes) -> list[Frame | None]:
        """The frames `data` completes, in order; None for each heart-beat (a lone EOL)."""
        self._buffer += data
        out: list[Frame | None] = []
        while self._buffer:
            if self._buffer[:1] == b"\n":
                self._buffer = self._buffer[1:]
                out.append(None)
                continue
            if self._buffer[:2] == b"\r\n":
                self._buffer = self._buffer[2:]
                out.append(None)
                continue
            if self._buffer == b"\r":
                break  # the rest of a CRLF may follow
            parsed = self._frame()
            if parsed is None:
                break
            out.append(parsed)
        if len(self._buffer) > self.max_bytes:
            raise FrameError(f"a frame is larger than {self.max_bytes} bytes")
        return out

    def _frame(self) -> Frame | None:
        """The frame at the start of the buffer, taken from it; None while it is not whole."""
        buffer = self._buffer
        end = buffer.find(b"\n\n")
        end_crlf = buffer.find(b"\n\r\n")
        if end < 0 and end_crlf < 0:
            if b"\0" in buffer:
                raise FrameError("a frame must end its headers with an empty line")
            return None
        if end < 0 or (0 <= end_crlf < end):
            head, body_start = buffer[:end_crlf], end_crlf + 3
        else:
            head, body_start = buffer[:end], end + 2
        if b"\0" in head:
            raise FrameError("a frame must end its headers with an empty line")
        lines = head.split(b"\n")
        command = _line(lines[0])
        if not command or not command.isascii() or not command.isalpha() \
                or not command.isupper():
            raise FrameError("a frame must begin with a command in capital letters")
        if len(lines) - 1 > MAX_HEADERS:
            raise FrameError(f"a frame may have at most {MAX_HEADERS} headers")
        version = self.version if command not in UNESCAPED else "1.0"
        headers: list[tuple[str, str]] = []
        for raw in lines[1:]:
            line = _line(raw)
            name, colon, value = line.partition(":")
            if not colon:
                raise FrameError("a header must be written name:value")
            headers.append((_unescaped(name, version, command),
                            _unescaped(value, version, command)))
        frame = Frame(command, tuple(headers))
        length_text = frame.get("content-length")
        if length_text is not None:
            length_text = length_text.strip()
            if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 9:
                raise FrameError("content-length must be a number of bytes")
            length = int(length_text)
            if length > self.max_bytes:
                raise FrameError(f"a frame is larger than {self.max_bytes} bytes")
            if len(buffer) < body_start + length + 1:
                return None
            if buffer[body_start + length] != 0:
                raise FrameError("a frame's body must end with NUL after content-length bytes")
            body_end = body_start + length
        else:
            body_end = buffer.find(b"\0", body_start)
            if body_end < 0:
                return None
        self._buffer = buffer[body_end + 1:]
        return Frame(command, frame.headers, buffer[body_start:body_end])
