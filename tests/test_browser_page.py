"""The page as a newcomer meets it, in Chromium: a phone held either way shows the pad
and the answer without scrolling, an upload is shown in the pad, the keyboard path
(Upload) works and says so, answers read "an 8", and the "not a digit" and "not
sure" states come from the API's own fields, served by real model files."""
import contextlib
import io
import re
import threading

import numpy as np
import pytest
from PIL import Image
from werkzeug.serving import make_server

from app import create_app
from model import modelfile
from model.inference import DEFAULT_MODEL_PATH
from tests.conftest import draw_strokes, encode
from tests.test_api_answers import rejecting_model
from tests.test_browser import (  # noqa: F401 (fixtures are used by name)
    ANSWER_TIMEOUT_MS,
    ARTIFACTS,
    _open,
    _QuietHandler,
    browser,
    draw_and_read,
    draw_with_mouse,
    expect_a_digit,
    live_app,
    pad_ink,
    settled_scroll,
)
from tools import strokes as stroke_font

pytestmark = pytest.mark.browser

LANDSCAPE = {"viewport": {"width": 844, "height": 390}, "has_touch": True, "is_mobile": True,
             "device_scale_factor": 2}
PORTRAIT = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True,
            "device_scale_factor": 2}
SMALL_PORTRAIT = {"viewport": {"width": 360, "height": 640}, "has_touch": True, "is_mobile": True,
                  "device_scale_factor": 2}
SEVEN = [[(0.27, 0.18), (0.73, 0.18), (0.60, 0.45), (0.45, 0.86)]]


@contextlib.contextmanager
def served(app):
    """`app` on 127.0.0.1 at a free port, for as long as the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=10)


def unsure_model(path, temperature=40.0):
    """The shipped network with its last layer divided by `temperature`: same ranking,
    flat probabilities, so every answer is below the API's "unsure" threshold."""
    meta, params = modelfile.load(DEFAULT_MODEL_PATH)
    last = max(i for i, layer in enumerate(meta["architecture"]) if layer["type"] == "dense")
    params = dict(params)
    for name in (f"{last}.W", f"{last}.b"):
        params[name] = (params[name] / np.float32(temperature)).astype(np.float32)
    meta = {key: value for key, value in meta.items() if key != "weights_sha256"}
    meta["name"] = "mnist-cnn-unsure"
    modelfile.save(path, meta, params)
    return str(path)


@pytest.fixture(scope="module")
def rejecting_app(tmp_path_factory):
    path = rejecting_model(tmp_path_factory.mktemp("rejecting") / "rejects.npz")
    with served(create_app({"MODEL_PATH": path})) as app:
        yield app


@pytest.fixture(scope="module")
def unsure_app(tmp_path_factory):
    path = unsure_model(tmp_path_factory.mktemp("unsure") / "unsure.npz")
    with served(create_app({"MODEL_PATH": path})) as app:
        yield app


@contextlib.contextmanager
def page_on(browser, app, **options):  # noqa: F811 (the browser fixture's value)
    page, problems = _open(browser, app, **options)
    try:
        yield page
    finally:
        page.context.close()
    assert problems == []


def in_view(page, selector):
    """The element's box lies wholly inside the visible viewport (no scrolling needed)."""
    box = page.locator(selector).bounding_box()
    width, height = page.evaluate("() => [window.innerWidth, window.innerHeight]")
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and \
        box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5


# ---------------------------------------------------------------- phone layouts

@pytest.mark.parametrize("name, options", [("landscape", LANDSCAPE), ("portrait", PORTRAIT),
                                           ("small-portrait", SMALL_PORTRAIT)])
def test_phone_shows_pad_and_answer_without_scrolling(browser, live_app, name, options):  # noqa: F811
    with page_on(browser, live_app, **options) as page:
        pad = page.locator("#pad").bounding_box()
        assert pad["width"] >= 250 and pad["height"] == pytest.approx(pad["width"], abs=1)
        for selector in ("#pad", "#clear", "#undo"):
            assert in_view(page, selector), selector
        draw_with_mouse(page, SEVEN)
        assert expect_a_digit(page) == 7
        page.screenshot(path=str(ARTIFACTS / f"phone-{name}-answer.png"))
        assert settled_scroll(page) == 0
        for selector in ("#pad", "#digit", "#confidence", "#verdict"):
            assert in_view(page, selector), f"{selector} is not in view on a {name} phone"
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1]


def test_landscape_phone_pad_uses_the_height(browser, live_app):  # noqa: F811
    """Sideways, the pad is sized by the visible height, not left at its width-based size."""
    with page_on(browser, live_app, **LANDSCAPE) as page:
        pad = page.locator("#pad").bounding_box()
        assert pad["y"] < 80                     # not 121 px down under a two-line heading
        assert pad["y"] + pad["height"] <= 390
        assert pad["height"] >= 390 * 0.75


# ---------------------------------------------------------------- uploads

def pad_pixels(page):
    shot = Image.open(io.BytesIO(page.locator("#pad").screenshot())).convert("L")
    return np.asarray(shot.resize((56, 56), Image.Resampling.BOX), dtype=np.float32)


def test_an_uploaded_image_is_shown_in_the_pad(browser, live_app):  # noqa: F811
    upload = draw_strokes(SEVEN, size=140, width=10).convert("L")
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        page.set_input_files("#file", files=[{"name": "seven.png", "mimeType": "image/png",
                                              "buffer": encode(upload, "PNG")}])
        assert expect_a_digit(page) == 7
        page.wait_for_timeout(300)  # the bitmap is drawn on the next frame
        shown = pad_pixels(page)
        page.screenshot(path=str(ARTIFACTS / "desktop-upload-shown.png"))
        expected = np.asarray(upload.resize((56, 56), Image.Resampling.BOX), dtype=np.float32)
        # Ignore the pad's rounded border; compare the picture inside it.
        inner = (slice(3, -3), slice(3, -3))
        correlation = np.corrcoef(shown[inner].ravel(), expected[inner].ravel())[0, 1]
        assert correlation > 0.8, correlation

        # The next stroke starts a new drawing: the upload is gone, only the stroke is left.
        draw_with_mouse(page, [[(0.5, 0.3), (0.5, 0.7)]])
        expect_a_digit(page)
        assert pad_ink(page) < 0.06


def test_a_wide_upload_keeps_its_shape(browser, live_app):  # noqa: F811
    """A 2:1 image is letterboxed, not stretched: the pad's top and bottom stay blank."""
    wide = Image.new("L", (400, 200), 255)
    wide.paste(draw_strokes(SEVEN, size=200, width=14).convert("L"), (100, 0))
    wide.paste(0, (0, 0, 400, 6))      # a black rule along the top edge of the image
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        page.set_input_files("#file", files=[{"name": "wide.png", "mimeType": "image/png",
                                              "buffer": encode(wide, "PNG")}])
        expect_a_digit(page)
        page.wait_for_timeout(300)
        shown = pad_pixels(page)[3:-3, 3:-3]
        rows_with_ink = np.flatnonzero((shown < 128).any(axis=1))
        # The image fills the middle half of the pad's height.
        assert rows_with_ink.min() >= 50 * 0.2 and rows_with_ink.max() <= 50 * 0.8, rows_with_ink


# ---------------------------------------------------------------- keyboard

def test_keyboard_path_is_upload_and_the_page_says_so(browser, live_app, digit_image):  # noqa: F811
    from playwright.sync_api import expect
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        # Playwright turns file-chooser interception on without waiting for it; subscribe
        # long before the key press so Chromium is already intercepting (CI lost this race).
        seen_choosers = []
        page.on("filechooser", lambda chooser: seen_choosers.append(chooser))
        page.wait_for_load_state("networkidle")  # every deferred script has run
        hint = page.locator("#keyboard-hint")
        expect(hint).to_be_visible()
        expect(hint).to_contain_text("Upload")
        assert page.locator("#pad").get_attribute("aria-describedby") == "keyboard-hint"

        focused = []
        for _ in range(6):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("() => document.activeElement.id"))
            if focused[-1] == "file":
                break
        assert focused[-1] == "file", focused
        assert "pad" not in focused  # the pad takes no focus, so no dead focus style either
        label = page.locator('label[for="file"]')
        assert label.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"

        assert page.evaluate("() => document.activeElement.id") == "file"
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")  # what a keyboard user presses on a focused button
        chooser.value.set_files(files=[{"name": "seven.png", "mimeType": "image/png",
                                        "buffer": encode(digit_image(7), "PNG")}])
        assert expect_a_digit(page) == 7
        assert len(seen_choosers) == 1  # one key press, one chooser


# ---------------------------------------------------------------- wording and states

def draw_font_digit(page, digit, seed):
    rng = np.random.default_rng([seed, digit])
    paths, _ = stroke_font.font_paths(digit, rng, "default")
    size = stroke_font.CANVAS
    return draw_and_read(page, [[(x / size, y / size) for x, y in path] for path in paths])


def test_an_eight_reads_an_8(browser, live_app):  # noqa: F811
    from playwright.sync_api import expect
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        assert draw_font_digit(page, 8, seed=3) == 8
        expect(page.locator("#verdict")).to_have_text("Looks like an 8.")
        page.locator("#clear").click()
        assert draw_font_digit(page, 7, seed=3) == 7
        expect(page.locator("#verdict")).to_have_text("Looks like a 7.")


def test_normal_model_shows_the_digit_state(browser, live_app):  # noqa: F811
    from playwright.sync_api import expect
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        draw_with_mouse(page, SEVEN)
        assert expect_a_digit(page) == 7
        expect(page.locator("#result")).to_have_attribute("data-is-digit", "true")
        expect(page.locator("#not-digit")).to_be_hidden()
        expect(page.locator("#confidence")).to_have_text(re.compile(r"% sure$"))
        page.locator("#clear").click()
        expect(page.locator("#not-digit")).to_be_hidden()
        assert page.locator("#result").get_attribute("data-is-digit") is None


def test_not_a_digit_is_said_plainly_with_the_closest_digit_dimmed(browser, rejecting_app, live_app):  # noqa: F811
    from playwright.sync_api import expect
    with page_on(browser, live_app, viewport={"width": 1100, "height": 800}) as page:
        draw_with_mouse(page, SEVEN)
        expect_a_digit(page)
        normal_colour = page.locator("#digit").evaluate("e => getComputedStyle(e).color")
    with page_on(browser, rejecting_app, viewport={"width": 1100, "height": 800}) as page:
        draw_with_mouse(page, SEVEN)
        expect(page.locator("#result")).to_have_attribute("data-is-digit", "false", timeout=ANSWER_TIMEOUT_MS)
        expect(page.locator("#not-digit")).to_be_visible()
        expect(page.locator("#not-digit")).to_have_text("That does not look like a digit.")
        expect(page.locator("#digit")).to_have_text("7")  # still the closest digit
        expect(page.locator("#verdict")).to_contain_text("closest is a 7")
        expect(page.locator("#confidence")).not_to_contain_text("sure")
        dimmed = page.locator("#digit").evaluate("e => getComputedStyle(e).color")
        assert dimmed != normal_colour
        page.screenshot(path=str(ARTIFACTS / "desktop-not-a-digit.png"))
        page.locator("#clear").click()
        expect(page.locator("#not-digit")).to_be_hidden()
        expect(page.locator("#digit")).to_have_text("")


def test_unsure_comes_from_the_api(browser, unsure_app):  # noqa: F811
    """A real model whose answers are all below the API's threshold: the page shows
    the API's `unsure` as "Not sure" with the second of the API's `top2`."""
    from playwright.sync_api import expect
    with page_on(browser, unsure_app, viewport={"width": 1100, "height": 800}) as page:
        with page.expect_response(lambda r: r.url.endswith("/predict"), timeout=ANSWER_TIMEOUT_MS) as answer:
            draw_with_mouse(page, SEVEN)
        body = answer.value.json()
        assert body["unsure"] is True and body["digit"] == 7
        second = body["top2"][1]["digit"]
        expect(page.locator("#verdict")).to_have_text(f"Not sure: 7 or {second}?")
        expect(page.locator("#verdict")).to_have_class(re.compile(r"\bunsure\b"))
