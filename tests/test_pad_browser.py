"""The shared drawing pad (static/pad.js) and asker (static/ask.js) in a real browser.

A fresh canvas is handed to window.digitdraw.pad on the real page, so the pad is
tested on its own (mouse, pen and touch strokes, undo, clear, what it calls back),
and then through the page: the events app.js sends other scripts, and errors
shown the same way in both modes. Uses the browser fixtures of tests/test_browser.py
(Debian's Chromium through Playwright, same skip rules).
"""
import json
import re

import pytest

from tests.test_browser import (  # noqa: F401 (fixtures are used by name)
    ANSWER_TIMEOUT_MS,
    browser,
    desktop,
    draw_with_mouse,
    expect_a_digit,
    live_app,
    phone,
    swipe,
)
from tests.test_number_page import draw_on_number_pad, number_mode

pytestmark = pytest.mark.browser

# A 280x280 canvas pinned to the top left (always in view), an Undo button under
# it, and a pad whose callbacks are logged in window.padLog.
HARNESS = """() => {
  const canvas = document.createElement("canvas");
  canvas.id = "harness";
  canvas.width = canvas.height = 280;
  Object.assign(canvas.style, { position: "fixed", left: "0", top: "0", width: "280px", height: "280px",
                                zIndex: "1000", touchAction: "none" });
  const undo = document.createElement("button");
  undo.id = "harness-undo";
  undo.textContent = "Undo";
  Object.assign(undo.style, { position: "fixed", left: "0", top: "290px", zIndex: "1000" });
  document.body.append(canvas, undo);
  window.padLog = [];
  canvas.addEventListener("pointerdown", function (e) { window.padLog.push("down:" + e.pointerType); });
  window.harnessPad = window.digitdraw.pad(canvas, {
    brush: 20,
    undoButton: undo,
    onStrokeStart: function () { window.padLog.push("start"); },
    onChange: function () { window.padLog.push("change"); },
  });
  window.harnessPad.redraw();
}"""

INK = """() => {
  const canvas = document.getElementById("harness");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let dark = 0;
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i] < 128) dark += 1;
  return dark / (canvas.width * canvas.height);
}"""

BAR = [(0.2, 0.3), (0.8, 0.3)]
POST = [(0.5, 0.4), (0.5, 0.9)]


def harness(page):
    page.evaluate(HARNESS)
    return page


def points_on(page, stroke, selector="#harness"):
    box = page.locator(selector).bounding_box()
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]


def mouse_stroke(page, stroke, button="left"):
    points = points_on(page, stroke)
    page.mouse.move(*points[0])
    page.mouse.down(button=button)
    for point in points[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up(button=button)


def pen_stroke(page, stroke):
    """A pen (stylus) stroke through the DevTools protocol: pointerType 'pen'."""
    cdp = page.context.new_cdp_session(page)
    points = points_on(page, stroke)

    def pen(kind, point, buttons):
        cdp.send("Input.dispatchMouseEvent", {"type": kind, "x": point[0], "y": point[1], "button": "left",
                                              "buttons": buttons, "clickCount": 1, "pointerType": "pen"})
    pen("mousePressed", points[0], 1)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for i in range(1, 9):
            pen("mouseMoved", (x0 + (x1 - x0) * i / 8, y0 + (y1 - y0) * i / 8), 1)
    pen("mouseReleased", points[-1], 0)


def log(page):
    return page.evaluate("() => window.padLog")


def ink(page):
    return page.evaluate(INK)


def strokes(page):
    return page.evaluate("() => window.harnessPad.strokeCount()")


# ---------------------------------------------------------------- the pad on its own

def test_a_mouse_stroke_is_drawn_and_reported_once_it_ends(desktop):  # noqa: F811
    harness(desktop)
    assert ink(desktop) == 0 and strokes(desktop) == 0
    assert desktop.locator("#harness-undo").is_disabled()
    mouse_stroke(desktop, BAR)
    assert log(desktop) == ["down:mouse", "start", "change"]
    assert strokes(desktop) == 1
    assert ink(desktop) > 0.04                           # a 20 px bar across 60% of the pad: 4.7%
    assert desktop.locator("#harness-undo").is_enabled()


def test_undo_removes_the_last_stroke_only_and_clear_empties_the_pad(desktop):  # noqa: F811
    harness(desktop)
    mouse_stroke(desktop, BAR)
    one = ink(desktop)
    mouse_stroke(desktop, POST)
    assert ink(desktop) > one and strokes(desktop) == 2
    desktop.locator("#harness-undo").click()
    assert strokes(desktop) == 1
    assert ink(desktop) == pytest.approx(one, abs=1e-3)  # the bar is still there, the post is gone
    assert log(desktop)[-1] == "change"                  # an undo is a new drawing to read
    desktop.locator("#harness-undo").click()
    assert strokes(desktop) == 0 and ink(desktop) == 0
    assert desktop.locator("#harness-undo").is_disabled()

    mouse_stroke(desktop, BAR)
    mouse_stroke(desktop, POST)
    changes = log(desktop).count("change")
    desktop.evaluate("() => window.harnessPad.clear()")
    assert strokes(desktop) == 0 and ink(desktop) == 0
    assert desktop.locator("#harness-undo").is_disabled()
    assert log(desktop).count("change") == changes       # what clearing means is the mode's to say
    desktop.evaluate("() => window.harnessPad.undo()")   # nothing left to undo: nothing happens
    assert log(desktop).count("change") == changes


def test_the_right_button_does_not_draw(desktop):  # noqa: F811
    harness(desktop)
    mouse_stroke(desktop, BAR, button="right")
    assert strokes(desktop) == 0 and ink(desktop) == 0
    assert "change" not in log(desktop)


def test_a_pen_draws_like_the_mouse(desktop):  # noqa: F811
    harness(desktop)
    pen_stroke(desktop, BAR)
    assert log(desktop) == ["down:pen", "start", "change"]
    assert strokes(desktop) == 1 and ink(desktop) > 0.04


def test_a_finger_draws_and_undo_works_on_a_phone(phone):  # noqa: F811
    harness(phone)
    cdp = phone.context.new_cdp_session(phone)
    swipe(cdp, points_on(phone, BAR))
    swipe(cdp, points_on(phone, POST))
    assert log(phone) == ["down:touch", "start", "change"] * 2
    assert strokes(phone) == 2
    both = ink(phone)
    phone.locator("#harness-undo").click()
    assert strokes(phone) == 1 and 0 < ink(phone) < both


# ---------------------------------------------------------------- through the page

LISTEN = """() => {
  window.pageEvents = [];
  ["digitdraw:input", "digitdraw:answer", "digitdraw:failed"].forEach(function (type) {
    document.addEventListener(type, function (e) {
      const d = e.detail;
      window.pageEvents.push([type.slice(10),
        type === "digitdraw:answer" ? d.image instanceof Blob && typeof d.result.digit === "number"
          : type === "digitdraw:failed" ? d.message : d !== null]);
    });
  });
}"""


def page_events(page):
    return [tuple(e) for e in page.evaluate("() => window.pageEvents")]


def test_digit_mode_announces_each_input_and_its_answer(desktop, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    desktop.evaluate(LISTEN)
    draw_with_mouse(desktop, digit_strokes[7])
    expect_a_digit(desktop)
    expect(desktop.locator("#status")).to_have_text("")
    assert page_events(desktop) == [("input", True), ("answer", True)]
    desktop.locator("#clear").click()
    expect(desktop.locator("#digit")).to_have_text("")
    assert page_events(desktop)[-1] == ("input", False)  # compare.js forgets the drawing


def test_a_server_error_is_shown_and_announced_as_failed(desktop, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    message = "The model is still loading; try again in a moment."
    desktop.route(re.compile(r"/predict$"), lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"error": message})))
    desktop.evaluate(LISTEN)
    draw_with_mouse(desktop, digit_strokes[1])
    expect(desktop.locator("#status")).to_have_text(message, timeout=ANSWER_TIMEOUT_MS)
    expect(desktop.locator("#status")).to_have_class(re.compile(r"\berror\b"))
    assert desktop.locator("#digit").inner_text() == ""
    # The answer is cleared but the input is not withdrawn: compare.js keeps the drawing
    # for its other models and shows the error on the default model's card.
    assert page_events(desktop) == [("input", True), ("failed", message)]
    desktop.problems[:] = [p for p in desktop.problems if "status of 503" not in p]


def test_an_unreachable_server_is_said_plainly_in_both_modes(desktop, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    unreachable = "Could not reach the server; check the connection and try again."
    desktop.route(re.compile(r"/predict(/number)?$"), lambda route: route.abort())
    desktop.evaluate(LISTEN)
    draw_with_mouse(desktop, digit_strokes[1])
    expect(desktop.locator("#status")).to_have_text(unreachable, timeout=ANSWER_TIMEOUT_MS)
    assert page_events(desktop)[-1] == ("failed", unreachable)

    number_mode(desktop)
    draw_on_number_pad(desktop, [[(100, 60), (100, 220)]])
    expect(desktop.locator("#number-status")).to_have_text(unreachable, timeout=ANSWER_TIMEOUT_MS)
    expect(desktop.locator("#number-status")).to_have_class(re.compile(r"\berror\b"))
    expect(desktop.locator("#number")).to_have_text("")
    desktop.problems[:] = [p for p in desktop.problems if "ERR_FAILED" not in p]


def test_a_drawing_that_cannot_be_exported_is_not_sent(desktop, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    requests = []
    desktop.on("request", lambda r: requests.append(r.url) if "/predict" in r.url else None)
    desktop.evaluate("() => { HTMLCanvasElement.prototype.toBlob = function (done) { done(null); }; }")
    desktop.evaluate(LISTEN)
    draw_with_mouse(desktop, digit_strokes[1])
    expect(desktop.locator("#status")).to_have_text(
        "Your browser could not export the drawing; try another browser.")
    expect(desktop.locator("#status")).to_have_class(re.compile(r"\berror\b"))
    assert requests == []
    assert page_events(desktop) == [("input", False)]   # no drawing was announced, so no failure either


def test_number_mode_undo_and_ctrl_z_leave_the_digit_pad_alone(desktop, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    draw_with_mouse(desktop, digit_strokes[1])
    expect_a_digit(desktop)
    number_mode(desktop)
    draw_on_number_pad(desktop, [[(100, 60), (100, 220)], [(300, 60), (300, 220)]])
    number = desktop.locator("#number")
    expect(number).to_have_attribute("data-strokes", "2", timeout=ANSWER_TIMEOUT_MS)
    desktop.locator("#number-undo").click()
    expect(number).to_have_attribute("data-strokes", "1", timeout=ANSWER_TIMEOUT_MS)
    desktop.keyboard.press("Control+z")
    expect(desktop.locator("#number-undo")).to_be_disabled()
    expect(number).to_have_attribute("data-strokes", "0")
    desktop.locator("#mode-digit").click()
    expect(desktop.locator("#undo")).to_be_enabled()     # the digit drawing kept its stroke
    expect(desktop.locator("#digit")).to_have_text(re.compile(r"^[0-9]$"))
