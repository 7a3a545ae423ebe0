"""app/errors.py: every error leaves as JSON with a sentence to act on, and each
status keeps its own message (the contract's errors, checked word for word)."""
import pytest
from flask import abort

from app import create_app
from app.errors import ApiError, BadInput, NoInk, NotReady, TooLarge, Unsupported, body_too_large
from app.formats import CONTENT_TYPES_TEXT
from tests.test_api import assert_json_error


@pytest.fixture
def app_with_aborts():
    """The real app plus one route that raises the HTTP error its URL names, as
    Werkzeug does when it refuses a request before a view runs."""
    app = create_app({"TESTING": True})
    app.add_url_rule("/abort/<int:status>", "abort_with", lambda status: abort(status))
    return app


def test_api_error_keeps_message_and_status():
    error = ApiError("Send a PNG.", 418)
    assert (error.message, error.status, str(error)) == ("Send a PNG.", 418, "Send a PNG.")
    assert ApiError("Send a PNG.").status == 400  # the class's status when none is given


@pytest.mark.parametrize("kind, status", [(BadInput, 400), (TooLarge, 413), (Unsupported, 415), (NoInk, 422),
                                          (NotReady, 503)])
def test_each_refusal_class_has_its_status(kind, status):
    assert kind("why").status == status
    assert kind("why", 409).status == 409


@pytest.mark.parametrize("limit, size, message", [
    (10_000, None, "The request body is over the limit of 10000 bytes; send a smaller image."),
    (1024 * 1024 - 1, None, "The request body is over the limit of 1048575 bytes; send a smaller image."),
    (1024 * 1024, None, "The request body is over the limit of 1048576 bytes (1 MB); send a smaller image."),
    (3 * 1024 * 1024 // 2, 2_000_000,
     "The request body is 2000000 bytes, over the limit of 1572864 bytes (1.5 MB); send a smaller image."),
])
def test_body_too_large_says_the_size_and_limit(limit, size, message):
    error = body_too_large(limit, size)
    assert isinstance(error, TooLarge) and error.status == 413
    assert error.message == message


def test_unknown_address_names_the_routes(client):
    message = assert_json_error(client.get("/no/such/page"), 404)
    assert message == ("There is nothing at this address; the routes are listed at GET /openapi.json "
                       "(POST /predict, POST /predict/number, GET /models, GET /healthz, ...).")


def test_a_request_werkzeug_cannot_understand_is_400_with_a_sentence(app_with_aborts):
    message = assert_json_error(app_with_aborts.test_client().get("/abort/400"), 400)
    assert message == "The request could not be understood; send an image as described in the README."


def test_an_unsupported_media_type_lists_what_is_accepted(app_with_aborts):
    message = assert_json_error(app_with_aborts.test_client().get("/abort/415"), 415)
    assert message == f"Unsupported content type; send multipart/form-data, {CONTENT_TYPES_TEXT} or application/json."


def test_a_413_from_werkzeug_names_the_configured_limit(app_with_aborts):
    limit = app_with_aborts.config["MAX_BODY_BYTES"]
    message = assert_json_error(app_with_aborts.test_client().get("/abort/413"), 413)
    assert message == body_too_large(limit).message


@pytest.mark.parametrize("status, name", [(408, "Request Timeout"), (429, "Too Many Requests"),
                                          (501, "Not Implemented")])
def test_other_http_errors_fall_back_to_their_name(app_with_aborts, status, name):
    assert assert_json_error(app_with_aborts.test_client().get(f"/abort/{status}"), status) == f"{name}."


def test_method_not_allowed_names_the_methods_to_use(client):
    response = client.delete("/predict")
    assert assert_json_error(response, 405) == "DELETE is not allowed on /predict; use POST."
    assert response.headers["Allow"] == "POST"


def test_an_unexpected_exception_is_a_logged_json_500(app_with_aborts, caplog):
    def fail():
        raise RuntimeError("a bug of ours")
    app_with_aborts.add_url_rule("/fail", "fail", fail)
    with caplog.at_level("ERROR", logger="digitdraw"):
        message = assert_json_error(app_with_aborts.test_client().get("/fail"), 500)
    assert message == ("Internal error while handling the request; it has been logged, "
                       "please retry or report it.")
    assert "unhandled error on GET /fail" in caplog.text and "a bug of ours" in caplog.text


def test_method_not_allowed_on_a_get_route_names_get_not_head(client):
    response = client.post("/healthz")
    assert assert_json_error(response, 405) == "POST is not allowed on /healthz; use GET."
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}
