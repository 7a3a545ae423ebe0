"""Refusals that the status code alone cannot prove: which Pillow errors become
a 400, that the pixel limit stops an image before any pixel is decoded, that
every refused image is closed, and where "unsure" starts."""
import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageFile

from app import create_app
from app.api import UNSURE_BELOW, describe
from model import modelfile
from tests.conftest import encode


def assert_json_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


# ---------------------------------------------------------------- corrupt files: what Pillow raises

def small_drawing(digit_image):
    return digit_image(7, size=40, width=4)


def png_with_empty_ihdr(digit_image):
    """IHDR's length field set to 0: Pillow's PNG parser raises ValueError while opening."""
    png = bytearray(encode(small_drawing(digit_image), "PNG"))
    png[8:12] = b"\0\0\0\0"
    return bytes(png)


def png_with_misplaced_chunk(digit_image):
    """IDAT's length field set to 0: the next chunk is read from inside the pixel
    data, and Pillow raises SyntaxError ("broken PNG file") while loading."""
    png = bytearray(encode(small_drawing(digit_image), "PNG"))
    at = png.index(b"IDAT") - 4
    png[at:at + 4] = b"\0\0\0\0"
    return bytes(png)


def gif_with_zero_width_frame(digit_image):
    """The frame descriptor's width set to 0: ValueError ("tile cannot extend
    outside image") while loading."""
    gif = bytearray(encode(small_drawing(digit_image), "GIF"))
    palette = 3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0
    at = gif.index(b",", 13 + palette)
    gif[at + 5:at + 7] = struct.pack("<H", 0)
    return bytes(gif)


def truncated_png(digit_image):
    """Cut in the middle of the pixel data: OSError ("image file is truncated") while loading."""
    png = encode(small_drawing(digit_image), "PNG")
    return png[: len(png) * 2 // 3]


def bmp_with_unknown_depth(digit_image):
    """7 bits per pixel: OSError ("Unsupported BMP pixel depth") while opening."""
    bmp = bytearray(encode(small_drawing(digit_image), "BMP"))
    bmp[28:30] = struct.pack("<H", 7)
    return bytes(bmp)


# Every exception type that corrupt files of the five formats made Pillow 13
# raise out of open() or load() (a corpus of truncations and byte flips; the
# types Pillow's open() turns into UnidentifiedImageError are not listed): one
# file each. DecompressionBombError is a 413, tested with the size limits.
CORRUPTIONS = [
    ("png empty IHDR", png_with_empty_ihdr, "image/png", ValueError, "open"),
    ("png misplaced chunk", png_with_misplaced_chunk, "image/png", SyntaxError, "load"),
    ("gif zero-width frame", gif_with_zero_width_frame, "image/gif", ValueError, "load"),
    ("png truncated", truncated_png, "image/png", OSError, "load"),
    ("bmp 7-bit", bmp_with_unknown_depth, "image/bmp", OSError, "open"),
]
IDS = [c[0] for c in CORRUPTIONS]


@pytest.mark.parametrize("name,build,mime,error,stage", CORRUPTIONS, ids=IDS)
def test_pillow_raises_this_for_the_corrupt_file(digit_image, name, build, mime, error, stage):
    """The list above is true of the installed Pillow (if it changes, update the list)."""
    reached = "open"
    with pytest.raises(error) as caught:
        with Image.open(io.BytesIO(build(digit_image))) as image:
            reached = "load"
            image.load()
    assert reached == stage
    if error is not OSError:
        assert not isinstance(caught.value, OSError)  # a distinct class, not OSError under another name


@pytest.mark.parametrize("name,build,mime,error,stage", CORRUPTIONS, ids=IDS)
def test_every_pillow_decode_error_is_a_400(client, digit_image, name, build, mime, error, stage):
    message = assert_json_error(client.post("/predict", data=build(digit_image), content_type=mime), 400)
    assert "corrupt" in message or "truncated" in message


# ---------------------------------------------------------------- the pixel limit comes first

@pytest.fixture
def decoded(monkeypatch):
    """Formats of the images whose pixels were decoded (a spy on Pillow's real load)."""
    formats = []
    real_load = ImageFile.ImageFile.load

    def load(self):
        formats.append(self.format)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return formats


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_pixel_limit_refuses_before_any_pixel_is_decoded(digit_image, decoded, fmt):
    """A valid 200x200 image against a 150x150 limit: 413, and Pillow never decoded
    it (the status alone would be the same if the size were checked after decoding)."""
    data = encode(digit_image(7, size=200, width=14), fmt)
    client = create_app({"TESTING": True, "MAX_IMAGE_PIXELS": 150 * 150}).test_client()
    message = assert_json_error(client.post("/predict", data=data, content_type=f"image/{fmt.lower()}"), 413)
    assert "200x200" in message
    assert decoded == []
    # The spy sees decoding when it happens: the same image under a larger limit.
    roomy = create_app({"TESTING": True, "MAX_IMAGE_PIXELS": 200 * 200}).test_client()
    assert roomy.post("/predict", data=data, content_type=f"image/{fmt.lower()}").status_code == 200
    assert fmt in decoded


# ---------------------------------------------------------------- refused images are closed

@pytest.fixture
def image_lifecycle(monkeypatch):
    """(opened, closed): ids of images Image.open returned and of images closed."""
    opened, closed = [], set()
    real_open, real_close = Image.open, Image.Image.close

    def open_(*args, **kwargs):
        image = real_open(*args, **kwargs)
        opened.append(id(image))
        return image

    def close(self):
        closed.add(id(self))
        return real_close(self)

    monkeypatch.setattr(Image, "open", open_)
    monkeypatch.setattr(Image.Image, "close", close)
    return opened, closed


@pytest.mark.parametrize("case", ["truncated", "zero-width frame", "over the pixel limit", "blank"])
def test_every_refused_image_is_closed(digit_image, image_lifecycle, case):
    client = create_app({"TESTING": True, "MAX_IMAGE_PIXELS": 100 * 100}).test_client()
    body, mime, status = {
        "truncated": (truncated_png(digit_image), "image/png", 400),
        "zero-width frame": (gif_with_zero_width_frame(digit_image), "image/gif", 400),
        "over the pixel limit": (encode(digit_image(7, size=120, width=8), "PNG"), "image/png", 413),
        "blank": (encode(Image.new("L", (60, 60), 255), "PNG"), "image/png", 422),
    }[case]
    opened, closed = image_lifecycle
    assert_json_error(client.post("/predict", data=body, content_type=mime), status)
    assert opened and set(opened) <= closed


# ---------------------------------------------------------------- "unsure" at the threshold

def test_unsure_starts_below_the_threshold_exactly():
    pixels = np.zeros((28, 28), np.uint8)

    class Named:  # describe() only reads the model's identity
        identity = {"name": "t"}

    def unsure(top):
        probabilities = np.full(10, (1.0 - top) / 9)
        probabilities[3] = top
        return describe(probabilities, True, 0.0, pixels, Named, 1.0, 2.0)["unsure"]

    assert unsure(UNSURE_BELOW) is False
    assert unsure(np.nextafter(UNSURE_BELOW, 0)) is True
    assert unsure(np.nextafter(UNSURE_BELOW, 1)) is False
    assert unsure(0.99) is False and unsure(0.2) is True


def model_answering(tmp_path, probabilities):
    """A real model file whose answer is `probabilities` for any image: a dense
    layer with zero weights and log-probability biases."""
    arch = [{"type": "flatten"}, {"type": "dense", "units": 10}]
    params = {"1.W": np.zeros((784, 10), np.float32),
              "1.b": np.log(np.asarray(probabilities, np.float64)).astype(np.float32)}
    path = tmp_path / "fixed.npz"
    modelfile.save(path, {"name": "fixed", "architecture": arch,
                          "input": {"shape": [28, 28, 1], "scale": 255.0, "mean": 0.0, "std": 1.0}}, params)
    return str(path)


@pytest.mark.parametrize("top,unsure", [(UNSURE_BELOW - 0.01, True), (UNSURE_BELOW + 0.01, False)])
def test_api_reports_unsure_from_the_models_confidence(tmp_path, digit_png, top, unsure):
    probabilities = np.full(10, (1.0 - top) / 9)
    probabilities[4] = top
    probabilities[8] += 0.001
    probabilities[0] -= 0.001
    app = create_app({"TESTING": True, "MODEL_PATH": model_answering(tmp_path, probabilities)})
    body = app.test_client().post("/predict", data=digit_png(7), content_type="image/png").get_json()
    assert body["digit"] == 4
    assert body["confidence"] == pytest.approx(top, abs=1e-5)  # float32 network, 6 decimals
    assert body["unsure"] is unsure
    assert [entry["digit"] for entry in body["top2"]] == [4, 8]
