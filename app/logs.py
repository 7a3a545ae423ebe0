"""One JSON line per request (method, path, status, duration) for log collectors.

JSON rather than prose so `jq` or a log pipeline can filter slow or failing
requests without regexes.
"""
import json
import logging
import sys
import time

from flask import g, request

REQUEST_LOGGER = "digitdraw.request"


class JsonLineFormatter(logging.Formatter):
    """Renders a record as one JSON object; dict messages are merged in as fields."""

    def format(self, record):
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, dict):
            line.update(record.msg)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


JsonLineFormatter.converter = time.gmtime


def configure(app):
    """Send the app's logs to stderr as JSON lines at LOG_LEVEL, once per process."""
    logger = logging.getLogger("digitdraw")
    logger.setLevel(app.config["LOG_LEVEL"])
    if not any(getattr(h, "_digitdraw", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        handler._digitdraw = True
        logger.addHandler(handler)
        logger.propagate = False
    request_log = logging.getLogger(REQUEST_LOGGER)

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response):
        if not request_log.isEnabledFor(logging.INFO):
            return response
        started = g.get("request_started")
        elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else None
        fields = {
            "event": "request",
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(elapsed_ms, 2) if elapsed_ms is not None else None,
            "bytes_in": request.content_length or 0,
        }
        prediction = g.get("prediction")
        if prediction is not None:
            fields["digit"] = prediction
        # The record made directly: Logger.info would first walk the stack for
        # the caller's file and line, which this line never shows and which
        # cost a third of the hook (measured in-process: 22 against 16 us for the call).
        request_log.handle(request_log.makeRecord(REQUEST_LOGGER, logging.INFO, __file__, 0, fields, None, None,
                                                  func="log_request"))
        return response
