"""Every error leaves the app as JSON `{"error": "..."}`: scripts parse it and the
page shows it, so neither ever has to cope with an HTML error page."""
import logging

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from .formats import CONTENT_TYPES_TEXT

log = logging.getLogger("digitdraw")


class ApiError(Exception):
    """A refusal the client can fix; `message` tells them how."""

    status = 400

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadInput(ApiError):
    status = 400


class TooLarge(ApiError):
    status = 413


class Unsupported(ApiError):
    status = 415


class NoInk(ApiError):
    status = 422


class NotReady(ApiError):
    status = 503


def body_too_large(limit, size=None):
    """The one 413 for a body over MAX_BODY_BYTES, wherever it is noticed
    (Content-Length, a chunked body while reading, Werkzeug's form parser)."""
    size_text = "" if size is None else f"{size} bytes, "
    megabytes = f" ({limit / (1024 * 1024):g} MB)" if limit >= 1024 * 1024 else ""
    return TooLarge(f"The request body is {size_text}over the limit of {limit} bytes{megabytes}; "
                    f"send a smaller image.")


def error_response(message, status):
    response = jsonify(error=message)
    response.status_code = status
    return response


def register(app):
    """Install JSON handlers for our own errors and for every HTTP error Flask raises."""

    # 405 and 413 are not here: their messages are built per request (the
    # allowed methods, the limit).
    messages = {
        400: "The request could not be understood; send an image as described in the README.",
        404: "There is nothing at this address; the routes are listed at GET /openapi.json "
             "(POST /predict, POST /predict/number, GET /models, GET /healthz, ...).",
        415: f"Unsupported content type; send multipart/form-data, {CONTENT_TYPES_TEXT} or application/json.",
    }

    @app.errorhandler(ApiError)
    def handle_api_error(exc):
        return error_response(exc.message, exc.status)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc):
        status = exc.code or 500
        message = messages.get(status)
        if status == 405:
            allowed = ", ".join(m for m in exc.valid_methods or () if m not in ("HEAD", "OPTIONS"))
            message = f"{request.method} is not allowed on {request.path}; use {allowed}."
        elif status == 413:
            message = body_too_large(app.config["MAX_BODY_BYTES"]).message
        elif message is None:
            message = f"{exc.name}."
        response = error_response(message, status)
        if status == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc):
        # Bad input is refused earlier with a 4xx; reaching here is our bug.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("Internal error while handling the request; it has been logged, "
                              "please retry or report it.", 500)
