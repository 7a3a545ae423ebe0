"""app/logs.py: one JSON line per request and per app event, which log collectors
filter by field; the fields and the line's format are what they rely on."""
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from app import create_app
from app.logs import REQUEST_LOGGER, JsonLineFormatter


def record(msg, args=(), exc_info=None, created=86400 * 365 + 0.1234):
    entry = logging.LogRecord("digitdraw.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    entry.created, entry.msecs = created, (created - int(created)) * 1000
    return entry


def test_a_dict_message_becomes_fields_of_one_json_line():
    line = JsonLineFormatter().format(record({"event": "model_loaded", "sha256": "abc", "n": 3}))
    assert "\n" not in line
    assert json.loads(line) == {"ts": "1971-01-01T00:00:00.123Z", "level": "warning", "logger": "digitdraw.test",
                                "pid": os.getpid(),
                                "event": "model_loaded", "sha256": "abc", "n": 3}


def test_a_text_message_is_formatted_with_its_arguments():
    line = json.loads(JsonLineFormatter().format(record("stored %d of %s", (3, "corrections"))))
    assert line["message"] == "stored 3 of corrections"
    assert set(line) == {"ts", "level", "logger", "pid", "message"}


def test_timestamps_are_utc_with_milliseconds():
    assert json.loads(JsonLineFormatter().format(record("x", created=1.5)))["ts"] == "1970-01-01T00:00:01.500Z"


def test_an_exception_is_carried_in_its_own_field():
    try:
        raise ValueError("bad weights")
    except ValueError:
        line = json.loads(JsonLineFormatter().format(record({"event": "crash"}, exc_info=sys.exc_info())))
    assert line["event"] == "crash"
    assert line["exception"].startswith("Traceback") and "ValueError: bad weights" in line["exception"]


def test_values_json_cannot_hold_are_written_as_text():
    line = json.loads(JsonLineFormatter().format(record({"path": Path("/m.npz")})))
    assert line["path"] == "/m.npz"


@pytest.fixture
def request_log(log_records):
    """The request logger's records, as the app hands them to its handler."""
    return log_records(REQUEST_LOGGER)


def test_a_prediction_logs_its_digit_and_request_size(client, digit_png, request_log):
    png = digit_png(7)
    answer = client.post("/predict", data=png, content_type="image/png").get_json()
    client.get("/healthz")
    predict, health = (r.msg for r in request_log)
    assert list(predict) == ["event", "method", "path", "status", "ms", "bytes_in", "digit"]
    assert predict["event"] == "request" and predict["digit"] == answer["digit"] == 7
    assert (predict["method"], predict["path"], predict["status"], predict["bytes_in"]) == ("POST", "/predict",
                                                                                              200, len(png))
    assert predict["ms"] == round(predict["ms"], 2) and 0 < predict["ms"] < 60_000
    assert "digit" not in health and health["bytes_in"] == 0
    assert all(r.levelno == logging.INFO and r.name == REQUEST_LOGGER for r in request_log)


def test_a_refused_prediction_logs_no_digit(client, request_log):
    client.post("/predict", data=b"not an image", content_type="image/png")
    (line,) = (r.msg for r in request_log)
    assert line["status"] == 400 and "digit" not in line


def test_above_info_no_request_is_logged(request_log, digit_png):
    quiet = create_app({"TESTING": True, "LOG_LEVEL": "WARNING"})
    try:
        assert quiet.test_client().post("/predict", data=digit_png(1), content_type="image/png").status_code == 200
        assert request_log == []
    finally:
        logging.getLogger("digitdraw").setLevel(logging.INFO)


def test_the_apps_logger_has_one_json_handler_however_many_apps(app):
    create_app({"TESTING": True})
    logger = logging.getLogger("digitdraw")
    ours = [h for h in logger.handlers if isinstance(h.formatter, JsonLineFormatter)]
    assert len(ours) == 1 and type(ours[0]) is logging.StreamHandler
    assert logger.propagate is False and logger.level == logging.INFO


def test_the_first_app_in_a_process_installs_the_json_handler(monkeypatch):
    """What `create_app` sets up when the logger has none of ours yet (a fresh
    worker process), with the handlers earlier tests left put back after."""
    logger = logging.getLogger("digitdraw")
    monkeypatch.setattr(logger, "handlers", [h for h in logger.handlers if not getattr(h, "_digitdraw", False)])
    monkeypatch.setattr(logger, "propagate", True)
    create_app({"TESTING": True})
    (ours,) = [h for h in logger.handlers if getattr(h, "_digitdraw", False)]
    assert ours._digitdraw is True and type(ours) is logging.StreamHandler and ours.stream is sys.stderr
    assert isinstance(ours.formatter, JsonLineFormatter)
    assert logger.propagate is False


# Run in a fresh interpreter: pytest records warnings itself during a test, which
# would hide where the app sends them.
WARNINGS_SCRIPT = """
import io, struct, sys, warnings, zlib
from PIL import Image
from app import create_app

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

digit = Image.new("L", (28, 28))
digit.paste(255, (10, 5, 18, 23))
buffer = io.BytesIO()
digit.save(buffer, "PNG")
png = buffer.getvalue()
# EXIF whose one tag claims 100 bytes past the end of the data: Pillow warns and skips it
exif = b"II*\\x00" + struct.pack("<IHHHIII", 8, 1, 0x010E, 2, 100, 200, 0)
at = png.index(b"IDAT") - 4
upload = png[:at] + chunk(b"eXIf", exif) + png[at:]

client = create_app({"TESTING": True}).test_client()
warnings.warn("the disk is slow")
print(client.post("/predict", data=upload, content_type="image/png").status_code, file=sys.stdout)
"""


def run_warnings_script(tmp_path, log_level):
    """The JSON lines WARNINGS_SCRIPT writes to stderr at `log_level`."""
    done = subprocess.run([sys.executable, "-c", WARNINGS_SCRIPT], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, "DATA_DIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                               "LOG_LEVEL": log_level})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["200"]  # the upload is read, its bad tag skipped
    return [json.loads(line) for line in done.stderr.splitlines()]  # every line JSON


def test_warnings_are_json_lines_and_an_uploads_bad_exif_is_not_one(tmp_path):
    lines = run_warnings_script(tmp_path, "INFO")
    (warning,) = [line for line in lines if line["logger"] == "py.warnings"]
    assert warning["level"] == "warning" and "UserWarning: the disk is slow" in warning["message"]
    assert not any("Tag data" in json.dumps(line) for line in lines)
    assert [line["path"] for line in lines if line.get("event") == "request"] == ["/predict"]


def test_at_error_level_neither_warnings_nor_requests_are_logged(tmp_path):
    assert run_warnings_script(tmp_path, "ERROR") == []


def test_the_app_routes_warnings_to_its_json_handler_but_not_pillows_exif_ones(log_records, monkeypatch):
    """The same in this process (so that mutation testing sees it): the filter is
    Pillow's TIFF reader's user warnings only, and everything else is logged."""
    warnings_logger = logging.getLogger("py.warnings")
    monkeypatch.setattr(warnings_logger, "level", warnings_logger.level)
    logging.captureWarnings(False)  # whatever an earlier test's app left
    try:
        create_app({"TESTING": True, "LOG_LEVEL": "WARNING"})
        records = log_records("py.warnings")
        warnings.warn_explicit("Tag data larger than file. Skipping tag 270", UserWarning,
                               "TiffImagePlugin.py", 946, module="PIL.TiffImagePlugin")
        warnings.warn_explicit("a deprecated mode", DeprecationWarning, "TiffImagePlugin.py", 10,
                               module="PIL.TiffImagePlugin")
        warnings.warn_explicit("the disk is slow", UserWarning, "store.py", 5, module="app.store")
    finally:
        logging.captureWarnings(False)
    assert ["deprecated mode" in r.getMessage() or "disk is slow" in r.getMessage() for r in records] == [True, True]
    ours = [h for h in warnings_logger.handlers if getattr(h, "_digitdraw", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, JsonLineFormatter)
    assert warnings_logger.propagate is False and warnings_logger.level == logging.WARNING
