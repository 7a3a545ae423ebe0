"""Shared fixtures: the app and its test client (as in Flask's tutorial), plus
helpers that draw digit-like images the way a person would on the page."""
import io
import logging
import math

import pytest
from PIL import Image, ImageDraw

from app import create_app

# Strokes as polylines in unit coordinates (0..1 across the canvas), drawn the
# way a person draws these digits. Shared by API tests (drawn with PIL) and
# browser tests (drawn with the mouse on canvas#pad).
DIGIT_STROKES = {
    1: [[(0.50, 0.14), (0.50, 0.86)]],
    7: [[(0.27, 0.18), (0.73, 0.18), (0.60, 0.45), (0.45, 0.86)]],
    # Counter-clockwise from the top, closing with a small overlap, as most people draw a 0.
    0: [[(0.5 - 0.23 * math.sin(math.radians(a)), 0.5 - 0.34 * math.cos(math.radians(a)))
         for a in range(0, 376, 15)]],
}

CANVAS = 280
BRUSH = CANVAS // 14  # what the page uses


def draw_strokes(strokes, size=CANVAS, width=BRUSH, ink=(0, 0, 0, 255), background=(255, 255, 255, 255)):
    """RGBA image of round-capped polylines (unit coordinates) on `background`."""
    image = Image.new("RGBA", (size, size), background)
    pen = ImageDraw.Draw(image)
    radius = width / 2
    for stroke in strokes:
        points = [(x * size, y * size) for x, y in stroke]
        pen.line(points, fill=ink, width=width, joint="curve")
        for x, y in points:  # round caps and joins, like the canvas's lineCap/lineJoin
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    return image


def encode(image, fmt="PNG", **options):
    """Bytes of `image` in `fmt`; converts modes the format cannot hold."""
    if fmt in ("JPEG", "BMP") and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if fmt == "GIF" and image.mode not in ("P", "L"):
        image = image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def app():
    app = create_app({"TESTING": True})
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def log_records():
    """Factory: `log_records("digitdraw")` -> a list that receives that logger's
    records until the test ends (the app's loggers do not propagate to caplog)."""
    attached = []

    def attach(name):
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.getLogger(name).addHandler(handler)
        attached.append((name, handler))
        return records

    yield attach
    for name, handler in attached:
        logging.getLogger(name).removeHandler(handler)


@pytest.fixture
def digit_image():
    """Factory: `digit_image(7)` -> PIL RGBA image of that digit, black on white."""
    def make(digit=1, **options):
        return draw_strokes(DIGIT_STROKES[digit], **options)
    return make


@pytest.fixture
def digit_png(digit_image):
    """Factory: `digit_png(7)` -> PNG bytes of that digit drawn on a 280x280 canvas."""
    def make(digit=1, **options):
        return encode(digit_image(digit, **options), "PNG")
    return make


@pytest.fixture
def digit_strokes():
    """The unit-coordinate polylines behind `digit_image`, for drawing elsewhere."""
    return DIGIT_STROKES


# ---- corrections (issue 10): no test ever writes into the checkout's data/ folder
# or a DATA_DIR/DATABASE_URL of the person running the tests.
@pytest.fixture(scope="session", autouse=True)
def _corrections_in_a_temporary_dir(tmp_path_factory):
    import os
    saved = {name: os.environ.get(name) for name in ("DATA_DIR", "DATABASE_URL", "FEEDBACK")}
    os.environ["DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("FEEDBACK", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def pen_number_samples():
    """The pen digits tools/number_eval.py composes numbers from (PENDIGITS_DIR or
    ../shared/pendigits, as tests/pen_data.py finds them: skipped without them,
    failed under CI=true)."""
    from tests.pen_data import pen
    return pen("digits")
