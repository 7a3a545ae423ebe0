"""app/payload.py inside a real Flask request: which content types carry an image, the
fields that travel with it, base64 spellings, and the exact words of every refusal
(the client reads them to fix the request)."""
import base64
import io
import json

import pytest

from app import create_app, payload
from app.errors import ApiError
from app.formats import CONTENT_TYPES_TEXT, SUPPORTED_TEXT

IMAGE = b"\x89PNG\r\n\x1a\n not decoded here"
B64 = base64.b64encode(IMAGE).decode()
JSON_HINT = 'send {"image": "data:image/png;base64,..."}.'


@pytest.fixture(scope="module")
def app():
    return create_app({"TESTING": True})


def read(app, names=(), **request):
    if isinstance(request.get("data"), dict):  # files as (bytes, name): a fresh stream per request
        request["data"] = {key: (io.BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
                           for key, value in request["data"].items()}
    with app.test_request_context("/predict", method="POST", **request):
        from flask import request as current
        return payload.image_and_fields(current, names)


def refusal(app, **request):
    with pytest.raises(ApiError) as refused:
        read(app, **request)
    return refused.value.status, refused.value.message


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", "image/x-ms-bmp"])
def test_raw_bodies_of_image_and_octet_stream_types_are_the_image(app, content_type):
    assert read(app, data=IMAGE, content_type=content_type) == (IMAGE, {})


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json",
                                          "application/json; charset=utf-8"])
def test_json_and_json_suffixed_types_are_read_as_json(app, content_type):
    body = json.dumps({"image": B64})
    assert read(app, data=body, content_type=content_type)[0] == IMAGE


def test_fields_travel_the_way_the_image_does(app):
    names = ("label", "model")
    multipart = read(app, names, data={"image": (IMAGE, "d.png"), "label": "7"},
                     content_type="multipart/form-data")
    assert multipart == (IMAGE, {"label": "7", "model": None})
    raw = read(app, names, data=IMAGE, content_type="image/png", query_string={"label": "3"})
    assert raw == (IMAGE, {"label": "3", "model": None})
    as_json = read(app, names, data=json.dumps({"image": B64, "label": 5}), content_type="application/json")
    assert as_json == (IMAGE, {"label": 5, "model": None})


@pytest.mark.parametrize("text", [
    base64.urlsafe_b64encode(b"\xfb\xff\xfe" + IMAGE).decode(),           # URL-safe alphabet ("-", "_")
    base64.urlsafe_b64encode(b"\xfb\xef\xbe").decode(),                   # "----": only "-"
    base64.urlsafe_b64encode(b"\xff\xff\xff").decode(),                   # "____": only "_"
    base64.b64encode(b"\xfb\xff\xfe" + IMAGE).decode().rstrip("="),       # standard, padding dropped
    base64.b64encode(b"\xfb\xff" + IMAGE).decode().rstrip("="),
    base64.b64encode(b"\xfb\xff\xfeAB").decode().rstrip("="),                # 7 characters: one "=" missing
    base64.b64encode(b"\xfb\xff\xfeA").decode().rstrip("="),                 # 6 characters: two missing
])
def test_base64_in_either_alphabet_with_or_without_padding(app, text):
    expected = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) if ("-" in text or "_" in text) \
        else base64.b64decode(text + "=" * (-len(text) % 4))
    assert payload.decode_base64_image(text) == expected
    assert payload.decode_base64_image("data:image/png;base64," + text) == expected


@pytest.mark.parametrize("request_kwargs,status,message", [
    ({}, 400, "No image was sent; POST an image file, e.g. curl -F image=@digit.png .../predict."),
    ({"data": b"abc"}, 415, f"Cannot read an image from no Content-Type; send multipart/form-data with field "
                            f"'image', a raw body with Content-Type {CONTENT_TYPES_TEXT}, or JSON "
                            f"{{\"image\": \"data:image/png;base64,...\"}}."),
    ({"data": b"abc", "content_type": "text/plain"}, 415,
     f"Cannot read an image from text/plain; send multipart/form-data with field 'image', a raw body with "
     f"Content-Type {CONTENT_TYPES_TEXT}, or JSON {{\"image\": \"data:image/png;base64,...\"}}."),
    ({"data": b"abc", "content_type": "image/tiff"}, 415, f"image/tiff is not supported; send {SUPPORTED_TEXT}."),
    ({"data": b"", "content_type": "image/png"}, 400,
     "The request body is empty; send the image bytes as the body."),
    ({"data": b"", "content_type": "application/json"}, 400, "The JSON body is empty; " + JSON_HINT),
    ({"data": b"{no", "content_type": "application/json"}, 400, "The body is not valid JSON; " + JSON_HINT),
    ({"data": "[" * 100_000 + "]" * 100_000, "content_type": "application/json"}, 400,
     "The JSON is nested too deeply; " + JSON_HINT),
    ({"data": "[1]", "content_type": "application/json"}, 400,
     'The JSON body must be an object like {"image": "data:image/png;base64,..."}.'),
    ({"data": "{}", "content_type": "application/json"}, 400,
     'The JSON object has no "image" key; ' + JSON_HINT),
    ({"data": '{"image": " "}', "content_type": "application/json"}, 400,
     '"image" must be a non-empty string: a data URL or base64 of the image file.'),
    ({"data": '{"image": "data:image/png,abc"}', "content_type": "application/json"}, 400,
     "The data URL must be base64-encoded (data:image/png;base64,...)."),
    ({"data": '{"image": "data:image/png;base64"}', "content_type": "application/json"}, 400,
     "The data URL is malformed; expected data:image/png;base64,<data>."),
    ({"data": '{"image": "data:image/png;base64, "}', "content_type": "application/json"}, 400,
     "The base64 image data is empty."),
    ({"data": '{"image": "QUJD$"}', "content_type": "application/json"}, 400,
     "The image is not valid base64; encode the file's bytes with base64."),
    ({"data": {"picture": (IMAGE, "d.png"), "": "x"}, "content_type": "multipart/form-data"}, 400,
     "The form field must be named 'image' (got 'picture'); e.g. curl -F image=@digit.png .../predict."),
    ({"data": {"other": "x"}, "content_type": "multipart/form-data"}, 400,
     "The form field must be named 'image' (got 'other'); e.g. curl -F image=@digit.png .../predict."),
    ({"data": {"b": "x", "a": "y"}, "content_type": "multipart/form-data"}, 400,
     "The form field must be named 'image' (got 'a', 'b'); e.g. curl -F image=@digit.png .../predict."),
    ({"data": {"": "x"}, "content_type": "multipart/form-data"}, 400,
     "The form field must be named 'image'; e.g. curl -F image=@digit.png .../predict."),
], ids=["nothing", "no-type", "text", "tiff", "empty-raw", "empty-json", "bad-json", "deep-json", "json-list",
        "no-image-key", "blank-image", "not-base64-url", "malformed-url", "empty-url-data",
        "bad-base64", "unnamed-part", "wrong-field", "two-wrong-fields", "only-unnamed"])
def test_every_refusal_says_what_to_fix(app, request_kwargs, status, message):
    assert refusal(app, **request_kwargs) == (status, message)


def test_a_form_with_too_many_parts_is_told_so_and_a_long_one_is_too_large():
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": 20_000})
    parts = {f"f{i}": "x" for i in range(30)}
    status, message = refusal(app, data=parts, content_type="multipart/form-data")
    assert (status, message) == (400, f"The form has more than {app.config['MAX_FORM_PARTS']} parts; "
                                      f"send one file in the field named 'image'.")
    with app.test_request_context("/predict", method="POST", data={"image": (io.BytesIO(b"x" * 30_000), "d.png")},
                                  content_type="multipart/form-data"):
        from flask import request as current
        with pytest.raises(ApiError) as refused:
            payload.image_and_fields(current)
    assert refused.value.status == 413
    assert "over the limit of 20000 bytes" in refused.value.message


def test_a_body_of_exactly_the_limit_is_read():
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": len(IMAGE)})
    assert read(app, data=IMAGE, content_type="image/png") == (IMAGE, {})


def test_too_many_parts_in_a_form_of_exactly_the_limit_is_still_a_400():
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart({f"f{i}": "x" for i in range(30)})
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": len(body)})
    status, message = refusal(app, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 400 and message.startswith("The form has more than")


@pytest.mark.parametrize("extra, status", [(0, 200), (1, 413)])
def test_a_chunked_body_of_exactly_the_limit_is_read_and_one_byte_more_is_too_large(extra, status):
    """No Content-Length (chunked upload, `wsgi.input_terminated`): the limit is exact too."""
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": len(IMAGE)})
    body = IMAGE + b"x" * extra
    environ = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}
    with app.test_request_context("/predict", method="POST", content_type="image/png", environ_overrides=environ):
        from flask import request as current
        assert current.content_length is None
        if status == 200:
            assert payload.image_and_fields(current) == (IMAGE, {})
        else:
            with pytest.raises(ApiError) as refused:
                payload.image_and_fields(current)
            assert refused.value.status == 413
