"""POST /predict and GET /healthz against the contract: every input form, every
error status, the headers, and start-up refusing a broken model."""
import base64
import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app import DebugRefused, create_app
from app.preprocess import preprocess
from model.modelfile import ModelFileError
from tests.conftest import encode
from tests.mnist_data import require_trained
from tests.openapi_check import checking_client

RAW_FORMATS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"),
               ("BMP", "image/bmp"), ("WEBP", "image/webp")]


# ---------------------------------------------------------------- helpers

@pytest.fixture
def client(app):
    """Every answer this file receives is also checked against /openapi.json."""
    return checking_client(app)


def png_declaring(width, height, complete=True):
    """A 1-bit PNG of `width` x `height` zeros: a few KB that decode to a huge image.

    complete=False stores only the first rows (a truncated stream): enough for a
    header check, and instant to build for absurd sizes.
    """
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    rows = height if complete else min(height, 16)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * min(512, rows - start)) for start in range(0, rows, 512))
    idat += packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_declaring(jpeg, width, height):
    """`jpeg` with its frame header (SOF0) claiming another size."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]


def assert_json_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and len(body["error"]) > 10
    assert "<html" not in response.get_data(as_text=True).lower()
    return body["error"]


def assert_prediction(response, app, image_bytes):
    """200 with the contract's keys, consistent with running the model ourselves."""
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    probabilities = np.array(body["probabilities"])
    assert probabilities.shape == (10,)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.all(probabilities >= 0)
    assert body["digit"] == int(np.argmax(probabilities))
    assert body["confidence"] == pytest.approx(probabilities.max())
    # Rounded probabilities tie (many are 0.0), so top2 is checked by value.
    assert body["top2"][0]["digit"] == body["digit"]
    assert [entry["probability"] for entry in body["top2"]] == sorted(body["probabilities"])[::-1][:2]

    # The 28x28 the API reports is exactly what preprocessing makes of the upload,
    # and the probabilities are the model's for it.
    with Image.open(io.BytesIO(image_bytes)) as upload:
        expected_input = preprocess(upload)
    header, encoded = body["input_image"].split(",", 1)
    assert header == "data:image/png;base64"
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    assert seen.shape == (28, 28)
    np.testing.assert_array_equal(seen, expected_input)
    model = app.extensions["digit_model"]
    np.testing.assert_allclose(probabilities, model.predict_proba(expected_input[None])[0], atol=1e-5)
    assert body["model"] == model.identity
    assert body["elapsed_ms"] == pytest.approx(sum(body["timings_ms"].values()), abs=0.011)
    assert set(body["timings_ms"]) == {"decode_and_preprocess", "model"}
    return body


# ---------------------------------------------------------------- the three input forms

def test_multipart_field_image(client, app, digit_png):
    png = digit_png(7)
    response = client.post("/predict", data={"image": (io.BytesIO(png), "seven.png")},
                           content_type="multipart/form-data")
    assert_prediction(response, app, png)


@pytest.mark.parametrize("fmt, mimetype", RAW_FORMATS)
def test_raw_body_each_format(client, app, digit_image, fmt, mimetype):
    data = encode(digit_image(7), fmt)
    response = client.post("/predict", data=data, content_type=mimetype)
    assert_prediction(response, app, data)


def test_json_data_url(client, app, digit_png):
    png = digit_png(0)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert_prediction(client.post("/predict", json={"image": url}), app, png)


def test_multipart_text_field_with_data_url(client, app, digit_png):
    png = digit_png(7)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    response = client.post("/predict", data={"image": url}, content_type="multipart/form-data")
    assert_prediction(response, app, png)


def test_json_bare_base64(client, app, digit_png):
    png = digit_png(0)
    assert_prediction(client.post("/predict", json={"image": base64.b64encode(png).decode()}), app, png)


def test_json_base64_with_line_breaks_and_no_padding(client, app, digit_png):
    png = digit_png(1)
    text = base64.b64encode(png).decode().rstrip("=")
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert_prediction(client.post("/predict", json={"image": wrapped}), app, png)


def test_animated_gif_uses_first_frame(client, app, digit_image):
    frames = [digit_image(1).convert("L"), digit_image(0).convert("L")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    response = client.post("/predict", data=buffer.getvalue(), content_type="image/gif")
    body = response.get_json()
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["input_image"].split(",")[1]))))
    np.testing.assert_array_equal(seen, preprocess(frames[0]))
    assert not np.array_equal(seen, preprocess(frames[1]))


# ---------------------------------------------------------------- 400

def test_no_body_is_400(client):
    assert "image" in assert_json_error(client.post("/predict"), 400)


def test_empty_raw_body_is_400(client):
    assert_json_error(client.post("/predict", data=b"", content_type="image/png"), 400)


@pytest.mark.parametrize("data", [b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_undecodable_bytes_are_400(client, data):
    assert_json_error(client.post("/predict", data=data, content_type="image/png"), 400)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_image_is_400(client, digit_image, fmt):
    data = encode(digit_image(7), fmt)
    message = assert_json_error(client.post("/predict", data=data[: len(data) // 2],
                                            content_type=f"image/{fmt.lower()}"), 400)
    assert "truncated" in message or "corrupt" in message or "could not" in message


def test_wrong_multipart_field_name_is_400_naming_image(client, digit_png):
    response = client.post("/predict", data={"file": (io.BytesIO(digit_png(7)), "seven.png")},
                           content_type="multipart/form-data")
    message = assert_json_error(response, 400)
    assert "'image'" in message and "'file'" in message


def test_empty_multipart_file_is_400(client):
    response = client.post("/predict", data={"image": (io.BytesIO(b""), "empty.png")},
                           content_type="multipart/form-data")
    assert_json_error(response, 400)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_bad_json_is_400(client, body):
    assert_json_error(client.post("/predict", data=body, content_type="application/json"), 400)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"data:image/png;base64,AAAA"', b"7", b"null"])
def test_json_not_an_object_is_400(client, body):
    message = assert_json_error(client.post("/predict", data=body, content_type="application/json"), 400)
    assert "object" in message


@pytest.mark.parametrize("body", [{}, {"picture": "AAAA"}, {"image": 12}, {"image": ""}, {"image": None}])
def test_json_without_usable_image_key_is_400(client, body):
    message = assert_json_error(client.post("/predict", json=body), 400)
    assert '"image"' in message


@pytest.mark.parametrize("text", ["@@@not base64@@@", "data:image/png;base64,%%%%", "QUJD$"])
def test_bad_base64_is_400(client, text):
    message = assert_json_error(client.post("/predict", json={"image": text}), 400)
    assert "base64" in message


def test_data_url_not_base64_encoded_is_400(client):
    message = assert_json_error(client.post("/predict", json={"image": "data:image/png,rawbytes"}), 400)
    assert "base64" in message


def test_base64_of_garbage_is_400(client):
    text = base64.b64encode(b"hello, this is text").decode()
    assert_json_error(client.post("/predict", json={"image": text}), 400)


# ---------------------------------------------------------------- 413

def test_body_over_limit_is_413_before_reading(client, app):
    limit = app.config["MAX_BODY_BYTES"]
    message = assert_json_error(client.post("/predict", data=b"\0" * (limit + 1), content_type="image/png"), 413)
    assert str(limit) in message


def test_multipart_over_limit_is_413():
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": 10_000})
    response = app.test_client().post("/predict", data={"image": (io.BytesIO(b"\0" * 20_000), "big.png")},
                                      content_type="multipart/form-data")
    assert_json_error(response, 413)


def test_png_bomb_is_413_before_decoding(client):
    bomb = png_declaring(5000, 5000)  # over our 16 Mpx limit, under Pillow's own guard
    assert len(bomb) < 10_000
    with Image.open(io.BytesIO(bomb)) as probe:  # it is a valid image of that size
        assert probe.size == (5000, 5000)
    message = assert_json_error(client.post("/predict", data=bomb, content_type="image/png"), 413)
    assert "5000x5000" in message


def test_png_declaring_30000_squared_is_413(client):
    bomb = png_declaring(30000, 30000, complete=False)
    message = assert_json_error(client.post("/predict", data=bomb, content_type="image/png"), 413)
    assert "pixels" in message


def test_jpeg_declaring_too_many_pixels_is_413(client, digit_image):
    bomb = jpeg_declaring(encode(digit_image(7), "JPEG"), 60000, 60000)
    assert_json_error(client.post("/predict", data=bomb, content_type="image/jpeg"), 413)


def test_pixel_limit_comes_from_config(digit_png):
    png = digit_png(7)  # 280 x 280
    small = create_app({"TESTING": True, "MAX_IMAGE_PIXELS": 279 * 280})
    assert_json_error(small.test_client().post("/predict", data=png, content_type="image/png"), 413)
    enough = create_app({"TESTING": True, "MAX_IMAGE_PIXELS": 280 * 280})
    assert enough.test_client().post("/predict", data=png, content_type="image/png").status_code == 200


# ---------------------------------------------------------------- 415

@pytest.mark.parametrize("mimetype", ["text/plain", "application/x-www-form-urlencoded", "image/tiff",
                                      "image/svg+xml", "application/xml"])
def test_unsupported_content_type_is_415(client, digit_png, mimetype):
    assert_json_error(client.post("/predict", data=digit_png(7), content_type=mimetype), 415)


def test_tiff_file_is_415_naming_the_format(client, digit_image):
    tiff = encode(digit_image(7).convert("RGB"), "TIFF")
    for response in (
        client.post("/predict", data=tiff, content_type="image/png"),
        client.post("/predict", data={"image": (io.BytesIO(tiff), "seven.tif")}, content_type="multipart/form-data"),
        client.post("/predict", json={"image": base64.b64encode(tiff).decode()}),
    ):
        assert "TIFF" in assert_json_error(response, 415)


@pytest.mark.parametrize("mime", ["text/plain", "image/tiff", "application/pdf"])
def test_data_url_of_unsupported_type_is_415(client, mime):
    url = f"data:{mime};base64," + base64.b64encode(b"some bytes").decode()
    assert_json_error(client.post("/predict", json={"image": url}), 415)


# ---------------------------------------------------------------- 422

def test_blank_white_image_is_422(client):
    white = encode(Image.new("RGB", (280, 280), "white"), "PNG")
    message = assert_json_error(client.post("/predict", data=white, content_type="image/png"), 422)
    assert message == "The image holds no ink (it is blank); draw or photograph a digit."


def test_blank_transparent_image_is_422(client):
    clear = encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "PNG")
    assert_json_error(client.post("/predict", data=clear, content_type="image/png"), 422)


def test_ink_on_transparent_canvas_is_classified(client, app, digit_image):
    # What a canvas exports when nothing fills its background.
    png = encode(digit_image(7, background=(0, 0, 0, 0)), "PNG")
    assert_prediction(client.post("/predict", data=png, content_type="image/png"), app, png)


# ---------------------------------------------------------------- 404, 405, 500

@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_predict_is_405(client, method):
    response = client.open("/predict", method=method)
    assert "POST" in assert_json_error(response, 405)
    assert "POST" in response.headers["Allow"]


def test_post_to_healthz_is_405(client):
    assert_json_error(client.post("/healthz"), 405)


def test_unknown_path_is_json_404_that_points_to_the_routes(client):
    assert_json_error(client.get("/no/such/page"), 404)
    message = client.get("/no/such/page").get_json()["error"]
    assert "/openapi.json" in message and "/predict/number" in message
    assert client.get("/openapi.json").status_code == 200  # where it points exists


def test_unexpected_error_is_json_500_without_details(app, caplog):
    def explode():
        raise RuntimeError("secret internal detail")
    app.add_url_rule("/explode", "explode", explode)
    response = app.test_client().get("/explode")
    message = assert_json_error(response, 500)
    assert "secret" not in message


# ---------------------------------------------------------------- headers, health, logging

@pytest.mark.parametrize("path", ["/", "/healthz", "/predict", "/static/app.js"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"]


def test_predictions_are_not_cached(client, digit_png):
    response = client.post("/predict", data=digit_png(7), content_type="image/png")
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_reports_the_loaded_model(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["model"] == app.extensions["digit_model"].identity
    assert body["model"]["sha256"]


def test_healthz_is_503_and_predict_refuses_without_a_model(app, digit_png):
    app.extensions["digit_model"] = None
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "error": "The model is not loaded; check the server log."}
    message = assert_json_error(client.post("/predict", data=digit_png(7), content_type="image/png"), 503)
    assert message == "The model is not loaded; the server cannot classify images right now."
    message = assert_json_error(client.post("/predict/number", data=digit_png(7), content_type="image/png"), 503)
    assert message == "The model is not loaded; the server cannot read numbers right now."


def test_timings_are_milliseconds_of_this_request(client, digit_png):
    body = client.post("/predict", data=digit_png(7), content_type="image/png").get_json()
    timings = body["timings_ms"]
    assert 0 < timings["decode_and_preprocess"] < 10_000 and 0 < timings["model"] < 10_000
    assert body["elapsed_ms"] == pytest.approx(timings["decode_and_preprocess"] + timings["model"], abs=0.011)
    number = client.post("/predict/number", data=digit_png(7), content_type="image/png").get_json()
    assert 0 < number["elapsed_ms"] < 10_000


@pytest.mark.parametrize("path, cache_control", [
    ("/healthz", "no-store"),                    # JSON: added by the security hook
    ("/metrics", "no-store"),                    # the route's own
    ("/openapi.json", "public, max-age=300"),    # the route's own, kept: not doubled by the hook
    ("/models", "no-store"),
])
def test_each_response_says_how_long_it_may_be_cached(client, path, cache_control):
    assert client.get(path).headers.getlist("Cache-Control") == [cache_control]


def test_the_page_is_not_marked_no_store(client):
    assert "Cache-Control" not in client.get("/").headers


def test_one_log_line_per_request_with_timing(client, log_records):
    records = log_records("digitdraw.request")
    client.get("/healthz")
    client.get("/predict")
    fields = [record.msg for record in records]
    assert [(f["method"], f["path"], f["status"]) for f in fields] == [
        ("GET", "/healthz", 200), ("GET", "/predict", 405)]
    assert all(isinstance(f["ms"], float) and f["ms"] > 0 for f in fields)


# ---------------------------------------------------------------- start-up

def test_missing_model_file_stops_start_up(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(ModelFileError, match="not found"):
        create_app({"TESTING": True, "MODEL_PATH": str(missing)})


def test_truncated_model_file_stops_start_up(app, tmp_path):
    source = app.extensions["digit_model"].path
    broken = tmp_path / "broken.npz"
    data = open(source, "rb").read()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="broken.npz"):
        create_app({"TESTING": True, "MODEL_PATH": str(broken)})


def test_model_path_from_environment(app, tmp_path, monkeypatch):
    copy = tmp_path / "copy.npz"
    shutil.copyfile(app.extensions["digit_model"].path, copy)
    monkeypatch.setenv("MODEL_PATH", str(copy))
    assert create_app({"TESTING": True}).extensions["digit_model"].path == str(copy)


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "12345")
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "1000")
    app = create_app({"TESTING": True})
    assert app.config["MAX_CONTENT_LENGTH"] == 12345
    assert app.config["MAX_IMAGE_PIXELS"] == 1000


def test_nonsense_limit_in_environment_stops_start_up(monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "five megabytes")
    with pytest.raises(ValueError, match="MAX_BODY_BYTES"):
        create_app({"TESTING": True})


def test_debug_mode_cannot_be_enabled(app, monkeypatch):
    with pytest.raises(DebugRefused):
        app.debug = True
    assert app.debug is False
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(DebugRefused, match="FLASK_DEBUG"):
        create_app({"TESTING": True})


# ---------------------------------------------------------------- the real model

@pytest.mark.parametrize("digit", [1, 0, 7])
def test_clearly_drawn_digit_is_recognised(client, app, digit_png, digit):
    require_trained(app.extensions["digit_model"])
    response = client.post("/predict", data=digit_png(digit), content_type="image/png")
    body = response.get_json()
    assert body["digit"] == digit, body["probabilities"]


def test_multipart_part_without_a_name_is_a_400_not_a_crash(client, digit_png):
    """Regression (found by the fuzz suite): a part with no name made sorting the
    received field names fail with a TypeError -> 500."""
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; filename=\"d.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + digit_png(1) + \
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--{boundary}--\r\n".encode()
    response = client.post("/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    assert "named 'image'" in response.get_json()["error"]
