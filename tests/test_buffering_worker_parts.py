"""The slow-client worker's pure parts, in process: its settings, how it words a
size, and the raw HTTP error it writes itself. test_slow_clients.py tests the
worker whole, through real gunicorn processes, which mutation testing cannot
trace; these can be."""
import http.client
import io
import json

import pytest

from app.buffering_worker import error_response, setting, size_text


def test_a_setting_missing_or_blank_is_its_default():
    assert setting("READ_TIMEOUT", 20, environ={}) == 20
    assert setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": "  "}) == 20


def test_a_setting_is_read_as_a_whole_number_from_1():
    assert setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": " 7 "}) == 7
    assert setting("READ_BUFFER_BYTES", 64, environ={"READ_BUFFER_BYTES": "1"}) == 1


@pytest.mark.parametrize("raw, message", [
    ("soon", "READ_TIMEOUT must be a whole number, got 'soon'"),
    ("2.5", "READ_TIMEOUT must be a whole number, got '2.5'"),
    ("0", "READ_TIMEOUT must be at least 1, got 0"),
    ("-4", "READ_TIMEOUT must be at least 1, got -4"),
])
def test_a_setting_that_is_no_count_stops_the_server_with_its_name(raw, message):
    with pytest.raises(SystemExit) as stopped:
        setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": raw})
    assert str(stopped.value) == message


@pytest.mark.parametrize("size, text", [
    (64 * 1024 * 1024, "64 MB"), (5 * 1024 * 1024, "5 MB"), (1024 * 1024, "1 MB"),
    (1536 * 1024, "1.5 MB"), (1024 * 1024 - 1024, "1023 kB"), (1536, "1.5 kB"),
    (1024, "1 kB"), (1023, "1023 bytes"), (0, "0 bytes"),
])
def test_sizes_are_worded_as_the_app_words_its_limits(size, text):
    assert size_text(size) == text


class _Received(io.BytesIO):
    """Bytes as http.client reads them from a socket."""

    def makefile(self, *args, **kwargs):
        return self


def _parse(raw):
    response = http.client.HTTPResponse(_Received(raw))
    response.begin()
    return response, response.read()


@pytest.mark.parametrize("status, reason", [
    (408, "Request Timeout"), (413, "Content Too Large"), (431, "Request Header Fields Too Large"),
    (503, "Service Unavailable"),
])
def test_the_worker_s_own_errors_are_complete_json_responses(status, reason):
    message = 'The request took too long to arrive; send it "whole".'
    response, body = _parse(error_response(status, message))
    assert (response.status, response.reason, response.version) == (status, reason, 11)
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Connection") == "close"
    assert int(response.getheader("Content-Length")) == len(body)
    assert json.loads(body) == {"error": message}
    assert response.getheader("Retry-After") == ("1" if status == 503 else None)
