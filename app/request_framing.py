"""Where an HTTP/1.1 request ends, judged from the bytes received so far.

The buffering worker (`app.buffering_worker`) reads each request into memory
before a thread serves it, so it must know when it has the whole request:
the header section up to its blank line, then `Content-Length` bytes of
body or a chunked body up to its last chunk and trailers. That is all this
parses; everything else (methods, header syntax, the limits gunicorn
enforces) is left to gunicorn's own parser, which later reads the same bytes
from memory.
"""
from enum import Enum

HEADER_END = b"\r\n\r\n"
CRLF = b"\r\n"
HEX_DIGITS = b"0123456789abcdefABCDEF"
# A chunk-size line (size and extensions) longer than this is refused, whether
# it arrives whole or a byte at a time: real clients send a few hex digits.
CHUNK_LINE_LIMIT = 1024


class Frame(Enum):
    NEED_MORE = "need more bytes"
    COMPLETE = "complete: hand it to the app"
    HANDOFF = "unclear framing: let gunicorn's parser answer it (all bytes it needs are here)"
    HEADERS_TOO_LARGE = "header section over the limit"
    BODY_TOO_LARGE = "body over the limit"


class RequestFrame:
    """Bytes of one request as they arrive; `feed()` says whether it is whole.

    `max_header_bytes` bounds the header section, `max_body_bytes` the body
    (the app's MAX_BODY_BYTES: a longer body would be refused anyway, so it is
    never buffered).
    """

    def __init__(self, max_header_bytes, max_body_bytes):
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.data = bytearray()
        self.header_end = None       # index just past the blank line
        self.content_length = None   # declared body length
        self.chunked = False
        self.expects_continue = False  # "Expect: 100-continue" with a body still to come
        self._chunk_pos = None       # where the next chunk-size line starts
        self._chunk_body = 0         # chunk payload bytes seen so far

    def __len__(self):
        return len(self.data)

    @property
    def method(self):
        """The request line's method (b"GET"), or b"" before it has arrived."""
        line = bytes(self.data[:64]).lstrip(CRLF)  # a client may send blank lines first
        method, space, _ = line.partition(b" ")
        return method if space else b""

    def feed(self, chunk):
        self.data += chunk
        if self.header_end is None:
            found = self.data.find(HEADER_END, max(0, len(self.data) - len(chunk) - 3))
            if found < 0:
                return Frame.HEADERS_TOO_LARGE if len(self.data) > self.max_header_bytes else Frame.NEED_MORE
            if found + len(HEADER_END) > self.max_header_bytes:
                return Frame.HEADERS_TOO_LARGE
            self.header_end = found + len(HEADER_END)
            verdict = self._read_framing_headers()
            if verdict is not None:
                return verdict
        if self.chunked:
            # Chunk-size lines add a few bytes per chunk; tiny chunks must not
            # turn the body limit into many times as much memory.
            if len(self.data) - self.header_end > 2 * self.max_body_bytes + 1024:
                return Frame.BODY_TOO_LARGE
            return self._scan_chunks()
        if self.content_length > self.max_body_bytes:
            return Frame.BODY_TOO_LARGE
        if len(self.data) >= self.header_end + self.content_length:
            return Frame.COMPLETE
        return Frame.NEED_MORE

    def _read_framing_headers(self):
        lengths, encodings, expect = set(), [], b""
        for line in bytes(self.data[:self.header_end - len(HEADER_END)]).split(CRLF)[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.add(value.strip())
            elif name == b"transfer-encoding":
                encodings.append(value.strip().lower())
            elif name == b"expect":
                expect = value.strip().lower()
        if encodings:
            # Chunked with a length, or an encoding we do not frame: gunicorn
            # refuses those itself, without reading a body.
            if lengths or encodings[-1].split(b",")[-1].strip() != b"chunked":
                return Frame.HANDOFF
            self.chunked = True
            self._chunk_pos = self.header_end
        elif len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            return Frame.HANDOFF
        else:
            self.content_length = int(next(iter(lengths))) if lengths else 0
        body_expected = self.chunked or self.content_length > 0
        self.expects_continue = expect == b"100-continue" and body_expected
        return None

    def _scan_chunks(self):
        data = self.data
        while True:
            eol = data.find(CRLF, self._chunk_pos)
            if eol < 0:  # the line so far, less a CR that may be half of its CRLF
                pending = len(data) - self._chunk_pos - data.endswith(b"\r")
                return Frame.BODY_TOO_LARGE if pending > CHUNK_LINE_LIMIT else Frame.NEED_MORE
            if eol - self._chunk_pos > CHUNK_LINE_LIMIT:
                return Frame.BODY_TOO_LARGE
            size_text = bytes(data[self._chunk_pos:eol]).split(b";", 1)[0].strip()
            if not size_text or size_text.strip(HEX_DIGITS):
                return Frame.HANDOFF
            size = int(size_text, 16)
            if size == 0:
                # Last chunk, then trailer lines (maybe none) up to an empty line.
                if data.find(HEADER_END, eol) >= 0:
                    return Frame.COMPLETE
                return Frame.HEADERS_TOO_LARGE if len(data) - eol > self.max_header_bytes else Frame.NEED_MORE
            self._chunk_body += size
            if self._chunk_body > self.max_body_bytes:
                return Frame.BODY_TOO_LARGE
            end = eol + 2 + size + 2
            if len(data) < end:
                self._chunk_body -= size  # counted again when the chunk is complete
                return Frame.NEED_MORE
            self._chunk_pos = end
