"""The page's number mode in a real browser: write 2, 0, 2, 6 with the mouse on
canvas#number-pad and read 2026 from #number, on desktop and phone viewports.

Uses the browser fixtures of tests/test_browser.py (Debian's Chromium through
Playwright, the real app on a free local port, skip/require logic included).
"""
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.test_browser import ANSWER_TIMEOUT_MS, ARTIFACTS, PHONE, _open, browser, live_app  # noqa: F401
from tests.test_numbers import glyph, width_of

pytestmark = pytest.mark.browser


@pytest.fixture
def desktop(browser, live_app):  # noqa: F811
    page, problems = _open(browser, live_app, viewport={"width": 1100, "height": 800})
    yield page
    page.context.close()
    assert problems == []


@pytest.fixture
def phone(browser, live_app):  # noqa: F811
    page, problems = _open(browser, live_app, **PHONE)
    yield page
    page.context.close()
    assert problems == []


def number_mode(page):
    from playwright.sync_api import expect
    page.locator("#mode-number").click()
    expect(page.locator("canvas#number-pad")).to_be_visible()
    expect(page.locator("canvas#pad")).to_be_hidden()
    expect(page.locator("#mode-number")).to_have_attribute("aria-pressed", "true")


def number_strokes(page, digits):
    """The stroke font's digits side by side, as polylines in the pad's own pixels,
    sized so the number fills the pad's width (phone pads are narrower)."""
    width, height = page.evaluate("() => [document.getElementById('number-pad').width, "
                                  "document.getElementById('number-pad').height]")
    brush = height / 14
    digit_height = min(0.6 * height, (width - 40) / (len(digits) * (0.62 + 0.3) + len(digits) * brush / height))
    gap = 0.3 * digit_height
    paths, x = [], 20.0 + brush / 2
    for d in digits:
        strokes = glyph(d, x, height=digit_height, top=(height - digit_height) / 2)
        paths.append(strokes)
        x += width_of(strokes) + brush + gap
    assert x - gap - brush / 2 < width
    return paths


def draw_on_number_pad(page, strokes):
    box = page.locator("#number-pad").bounding_box()
    width, height = page.evaluate("() => [document.getElementById('number-pad').width, "
                                  "document.getElementById('number-pad').height]")
    for stroke in strokes:
        points = [(box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=1)
        page.mouse.up()


def write_and_read(page, digits):
    """Write each digit stroke by stroke; return the answer to the very last stroke."""
    from playwright.sync_api import expect
    glyphs = number_strokes(page, digits)
    every = [stroke for strokes in glyphs for stroke in strokes]
    answers = []
    page.on("response", lambda r: answers.append(r) if r.url.endswith("/predict/number") else None)
    draw_on_number_pad(page, every)
    # The page marks which drawing its answer belongs to: wait for the whole one.
    expect(page.locator(f'#number[data-strokes="{len(every)}"]')).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    shown = page.locator("#number").inner_text()
    answer = answers[-1].json()
    assert answer["number"] == shown
    return answer


def overlay_colour_fraction(page):
    """Fraction of bluish or orange pixels (the boxes and their labels) over the pad."""
    shot = Image.open(io.BytesIO(page.locator(".number-stage").screenshot())).convert("RGB")
    rgb = np.asarray(shot).astype(int)
    coloured = (np.abs(rgb[..., 0] - rgb[..., 2]) > 80)
    return float(coloured.mean())


def check_reading(page, answer):
    from playwright.sync_api import expect
    assert answer["number"] == "2026", answer
    items = page.locator("#number-digits li.number-digit")
    expect(items).to_have_count(4)
    assert [items.nth(i).get_attribute("data-digit") for i in range(4)] == ["2", "0", "2", "6"]
    for i in range(4):
        assert float(items.nth(i).get_attribute("data-confidence")) == pytest.approx(
            answer["digits"][i]["confidence"], abs=1e-4)
    expect(page.locator("#number-confidence")).to_have_text(re.compile(r"% sure of the whole number"))
    assert overlay_colour_fraction(page) > 0.002          # the boxes are drawn over the ink


def test_desktop_number_mode_reads_2026(desktop):
    from playwright.sync_api import expect
    number_mode(desktop)
    assert desktop.evaluate("() => document.getElementById('number-pad').width") == 840
    answer = write_and_read(desktop, [2, 0, 2, 6])
    desktop.screenshot(path=str(ARTIFACTS / "number-desktop-2026.png"), full_page=True)
    check_reading(desktop, answer)
    assert desktop.url.endswith("#number")

    # Undo takes the last stroke away (the 6), Clear empties everything.
    strokes = int(desktop.locator("#number").get_attribute("data-strokes"))
    desktop.locator("#number-undo").click()
    expect(desktop.locator(f'#number[data-strokes="{strokes - 1}"]')).to_have_text("202", timeout=ANSWER_TIMEOUT_MS)
    desktop.locator("#number-clear").click()
    expect(desktop.locator("#number")).to_have_text("")
    expect(desktop.locator("#number-digits li")).to_have_count(0)
    assert overlay_colour_fraction(desktop) < 0.0005


def test_digit_mode_is_untouched_and_comes_back(desktop):
    from playwright.sync_api import expect
    number_mode(desktop)
    desktop.locator("#mode-digit").click()
    expect(desktop.locator("canvas#pad")).to_be_visible()
    expect(desktop.locator("#number-mode")).to_be_hidden()
    assert desktop.evaluate("() => [document.getElementById('pad').width, document.getElementById('pad').height]") \
        == [280, 280]
    expect(desktop.locator("#digit")).to_have_text("")
    expect(desktop.locator("button#clear")).to_be_visible()


def test_number_mode_opens_from_its_address(browser, live_app):  # noqa: F811
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(live_app.config["LIVE_URL"] + "#number")
    expect(page.locator("canvas#number-pad")).to_be_visible()
    context.close()


def test_phone_number_mode_is_full_width_and_reads_2026(phone):
    number_mode(phone)
    box = phone.locator("#number-pad").bounding_box()
    viewport = phone.viewport_size["width"]
    assert box["x"] == pytest.approx(0, abs=1) and box["width"] == pytest.approx(viewport, abs=1)
    widths = phone.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]                          # no sideways scrolling
    answer = write_and_read(phone, [2, 0, 2, 6])
    phone.screenshot(path=str(ARTIFACTS / "number-phone-2026.png"))
    check_reading(phone, answer)
