"""RequestFrame: the buffering worker hands a request to the app exactly when
its last byte has arrived, however the bytes are split, and refuses what is
over the limits before buffering it."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.request_framing import Frame, RequestFrame

PNG_HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"


def frame(max_header=64 * 1024, max_body=5 * 1024 * 1024):
    return RequestFrame(max_header, max_body)


def feed_all(request, pieces):
    """Feed `request` split into `pieces`; the verdict after each piece."""
    f = frame()
    return f, [f.feed(piece) for piece in pieces]


def split(data, cuts):
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def chunked(body, sizes):
    out, at = b"", 0
    for size in sizes:
        piece = body[at:at + size]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        at += len(piece)
    if at < len(body):
        out += f"{len(body) - at:X};ext=1\r\n".encode() + body[at:] + b"\r\n"
    return out + b"0\r\n\r\n"


def test_a_request_without_body_is_complete_at_the_blank_line():
    f = frame()
    assert f.feed(b"GET /healthz HTTP/1.1\r\nHost: x\r\n") is Frame.NEED_MORE
    assert f.feed(b"\r\n") is Frame.COMPLETE


def test_a_body_is_awaited_to_its_declared_length():
    f = frame()
    assert f.feed(PNG_HEAD + b"Content-Length: 5\r\n\r\nabc") is Frame.NEED_MORE
    assert f.feed(b"d") is Frame.NEED_MORE
    assert f.feed(b"e") is Frame.COMPLETE


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=3000), cuts=st.lists(st.integers(min_value=0), max_size=12),
       use_chunks=st.booleans(), sizes=st.lists(st.integers(1, 700), max_size=6))
def test_complete_exactly_at_the_last_byte_however_split(body, cuts, use_chunks, sizes):
    if use_chunks:
        request = PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, sizes)
    else:
        request = PNG_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    f, verdicts = feed_all(request, split(request, cuts))
    assert verdicts[-1] is Frame.COMPLETE
    assert all(v is Frame.NEED_MORE for v in verdicts[:-1])
    assert bytes(f.data) == request


def test_chunked_body_with_trailers():
    f = frame()
    assert f.feed(PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n") is Frame.NEED_MORE
    assert f.feed(b"\r\n") is Frame.COMPLETE


def test_a_declared_body_over_the_limit_is_refused_before_it_arrives():
    f = frame(max_body=1000)
    assert f.feed(PNG_HEAD + b"Content-Length: 1001\r\n\r\n") is Frame.BODY_TOO_LARGE
    assert frame(max_body=1000).feed(PNG_HEAD + b"Content-Length: 1000\r\n\r\n") is Frame.NEED_MORE


def test_a_chunked_body_over_the_limit_is_refused_as_it_grows():
    f = frame(max_body=1000)
    assert f.feed(PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n") is Frame.NEED_MORE
    assert f.feed(b"200\r\n" + b"a" * 0x200 + b"\r\n") is Frame.NEED_MORE
    assert f.feed(b"200\r\n") is Frame.BODY_TOO_LARGE


def test_tiny_chunks_cannot_multiply_the_memory_limit():
    f = frame(max_body=1000)
    f.feed(PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    verdict = Frame.NEED_MORE
    while verdict is Frame.NEED_MORE and len(f) < 100_000:
        verdict = f.feed(b"1\r\na\r\n")
    assert verdict is Frame.BODY_TOO_LARGE
    assert len(f) <= 2 * 1000 + 1024 + len(PNG_HEAD) + 40


def test_endless_headers_are_refused_at_the_header_limit():
    f = frame(max_header=1024)
    verdicts = [f.feed(b"X-Filler: " + b"a" * 90 + b"\r\n") for _ in range(12)]
    assert verdicts[:9] == [Frame.NEED_MORE] * 9
    assert Frame.HEADERS_TOO_LARGE in verdicts


@pytest.mark.parametrize("headers", [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",   # request smuggling shape
    b"Content-Length: 5\r\nContent-Length: 6\r\n",
    b"Content-Length: -5\r\n",
    b"Content-Length: five\r\n",
    b"Transfer-Encoding: gzip\r\n",
])
def test_framing_gunicorn_refuses_is_handed_over_at_once(headers):
    """gunicorn's parser answers these 400 from the bytes already here."""
    assert frame().feed(PNG_HEAD + headers + b"\r\n") is Frame.HANDOFF


def test_a_bad_chunk_size_is_handed_over_at_once():
    f = frame()
    assert f.feed(PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n") is Frame.HANDOFF


def test_expect_continue_is_noted_only_when_a_body_is_coming():
    with_body = frame()
    with_body.feed(PNG_HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert with_body.expects_continue
    no_body = frame()
    assert no_body.feed(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n") is Frame.COMPLETE
    assert not no_body.expects_continue


def test_pipelined_bytes_after_the_request_stay_in_the_buffer():
    f = frame()
    two = b"GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n"
    assert f.feed(two) is Frame.COMPLETE
    assert bytes(f.data) == two


@pytest.mark.parametrize("received,method", [
    (b"GET /healthz HTTP/1.1\r\n", b"GET"),
    (b"\r\n\r\nPOST /predict HTTP/1.1\r\n", b"POST"),  # blank lines before the request line
    (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD"),
    (b"GET", b""),                                         # the method may still be growing
    (b"", b""),
])
def test_the_method_is_read_from_the_request_line(received, method):
    frame = RequestFrame(1024, 1024)
    frame.feed(received)
    assert frame.method == method


# ---- every limit at its exact edge, and framing shapes the tests above do not draw

CHUNKED_HEAD = PNG_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def head_of(size, blank_line=True):
    """A GET whose header section is exactly `size` bytes (with or without its blank line)."""
    start, end = b"GET / HTTP/1.1\r\nX-Filler: ", b"\r\n\r\n" if blank_line else b""
    return start + b"a" * (size - len(start) - len(end)) + end


def test_a_header_section_of_exactly_the_limit_is_accepted_and_one_byte_more_refused():
    assert frame(max_header=1024).feed(head_of(1024)) is Frame.COMPLETE
    assert frame(max_header=1024).feed(head_of(1025)) is Frame.HEADERS_TOO_LARGE
    # Still without its blank line: waited for up to the limit, refused past it.
    assert frame(max_header=1024).feed(head_of(1024, blank_line=False)) is Frame.NEED_MORE
    assert frame(max_header=1024).feed(head_of(1025, blank_line=False)) is Frame.HEADERS_TOO_LARGE


def test_a_chunked_body_of_exactly_the_limit_completes_even_when_its_last_chunk_arrives_in_pieces():
    """A chunk still arriving is counted once when it is whole: a body at the limit
    whose longest chunk (over half the limit) comes in three pieces is not refused."""
    body = b"a" * 400 + b"b" * 600
    request = CHUNKED_HEAD + chunked(body, [400, 600])
    cut = len(CHUNKED_HEAD) + len(b"190\r\n") + 400 + len(b"\r\n258\r\n")
    f = frame(max_body=1000)
    verdicts = [f.feed(piece) for piece in (request[:cut + 100], request[cut + 100:cut + 300],
                                            request[cut + 300:])]
    assert verdicts == [Frame.NEED_MORE, Frame.NEED_MORE, Frame.COMPLETE]
    over = CHUNKED_HEAD + chunked(body + b"c", [400, 601])
    assert frame(max_body=1000).feed(over) is Frame.BODY_TOO_LARGE


def test_a_chunk_size_line_over_its_limit_is_refused_however_it_arrives():
    line = b"1;ext=" + b"e" * (1024 - 6)          # exactly 1024 bytes before its CRLF
    whole = CHUNKED_HEAD + line + b"\r\nX\r\n0\r\n\r\n"
    assert frame().feed(whole) is Frame.COMPLETE
    f = frame()
    assert f.feed(CHUNKED_HEAD + line) is Frame.NEED_MORE
    assert f.feed(b"\r") is Frame.NEED_MORE      # half a CRLF does not lengthen the line
    assert f.feed(b"\nX\r\n0\r\n\r\n") is Frame.COMPLETE
    longer = CHUNKED_HEAD + line + b"e"
    assert frame().feed(longer) is Frame.BODY_TOO_LARGE
    assert frame().feed(longer + b"\r") is Frame.BODY_TOO_LARGE
    assert frame().feed(longer + b"\r\nX\r\n0\r\n\r\n") is Frame.BODY_TOO_LARGE


def test_endless_trailers_are_refused_at_the_header_limit():
    start = CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Sum: "
    trailer_budget = 1024 - len(b"\r\nX-Sum: ")  # counted from the last chunk's CRLF
    assert frame(max_header=1024).feed(start + b"1" * trailer_budget) is Frame.NEED_MORE
    assert frame(max_header=1024).feed(start + b"1" * (trailer_budget + 1)) is Frame.HEADERS_TOO_LARGE


def test_chunk_framing_overhead_is_bounded_at_exactly_twice_the_body_limit_plus_1024():
    """Long extensions on one-byte chunks: the body is 2 bytes, the framing 1,044."""
    def extended_chunk(extension_bytes):
        return b"1;" + b"e" * extension_bytes + b"\r\nX\r\n"
    received = extended_chunk(1000) + extended_chunk(29) + b"1"   # the next size line begins
    assert len(received) == 2 * 10 + 1024
    assert frame(max_body=10).feed(CHUNKED_HEAD + received) is Frame.NEED_MORE
    received = extended_chunk(1000) + extended_chunk(30) + b"1"
    assert frame(max_body=10).feed(CHUNKED_HEAD + received) is Frame.BODY_TOO_LARGE


def test_the_framing_headers_are_read_wherever_they_stand():
    first = frame()
    assert first.feed(b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nHost: x\r\n\r\n") is Frame.NEED_MORE
    assert first.feed(b"abc") is Frame.COMPLETE
    # "gzip,chunked" without a space still ends in chunked: framed by its chunks.
    listed = frame()
    assert listed.feed(PNG_HEAD + b"Transfer-Encoding: gzip,chunked\r\n\r\n3\r\nabc\r\n") is Frame.NEED_MORE
    assert listed.feed(b"0\r\n\r\n") is Frame.COMPLETE


def test_chunk_extensions_after_the_size_are_skipped():
    f = frame()
    assert f.feed(CHUNKED_HEAD + b"3;name=value;other\r\nabc\r\n") is Frame.NEED_MORE
    assert f.feed(b"0\r\n\r\n") is Frame.COMPLETE


def test_no_100_continue_before_the_headers_have_said_so():
    """The worker answers 100 Continue while a request NEEDs MORE and expects it."""
    f = frame()
    assert f.feed(b"POST /predict HTTP/1.1\r\nExpect: 100-continue\r\n") is Frame.NEED_MORE
    assert not f.expects_continue
    assert f.feed(b"Content-Length: 1\r\n\r\n") is Frame.NEED_MORE
    assert f.expects_continue


def test_two_empty_lines_before_a_request_are_handed_over_at_once():
    """gunicorn ignores one empty line before the request line, not two: what it
    will refuse is handed to it as soon as the blank line is here, not waited on."""
    assert frame().feed(b"\r\n\r\nPOST /predict HTTP/1.1\r\n") is Frame.COMPLETE
    one = frame()
    assert one.feed(b"\r\nGET /healthz HTTP/1.1\r\n") is Frame.NEED_MORE
    assert one.feed(b"\r\n") is Frame.COMPLETE
