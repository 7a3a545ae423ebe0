"""The page's correction row in the real browser (Debian's Chromium via Playwright):
after an answer, "Wrong? It was: 0 ... 9" sends the drawing with the chosen digit
to POST /feedback, says "Saved, thank you", and is reachable with the keyboard.
Uses the browser fixture and drawing helpers of test_browser.py (same skip rules).
"""
import threading

import numpy as np
import pytest
from werkzeug.serving import make_server

from app import create_app
from app.feedback import STORE_KEY
from tests.test_browser import (  # noqa: F401
    ANSWER_TIMEOUT_MS,
    ARTIFACTS,
    PHONE,
    _open,
    _QuietHandler,
    browser,
    draw_with_mouse,
    expect_a_digit,
)

pytestmark = pytest.mark.browser


def serve(config):
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}/"
    return app, server, thread


@pytest.fixture(scope="module")
def feedback_app(tmp_path_factory):
    app, server, thread = serve({"DATA_DIR": str(tmp_path_factory.mktemp("feedback-data"))})
    yield app
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def page(browser, feedback_app):  # noqa: F811 (the browser fixture's value)
    page, problems = _open(browser, feedback_app, viewport={"width": 1100, "height": 800})
    yield page
    page.context.close()
    assert problems == []


def stored(app):
    return app.extensions[STORE_KEY].rows()


def test_a_tap_on_the_right_digit_saves_the_drawing(page, feedback_app, digit_strokes):
    from playwright.sync_api import expect
    row = page.locator("#feedback")
    expect(row).to_be_hidden()  # nothing to correct before an answer
    before = len(stored(feedback_app))
    draw_with_mouse(page, digit_strokes[7])
    shown = expect_a_digit(page)
    expect(row).to_be_visible()
    expect(row).to_contain_text("Wrong? It was:")
    expect(row).to_contain_text("stored on this server")
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as reply:
        page.locator('.feedback-label[data-label="2"]').click()
    assert reply.value.status == 201
    expect(page.locator("#feedback-status")).to_have_text("Saved, thank you.")
    expect(page.locator('.feedback-label[data-label="2"]')).to_have_attribute("aria-pressed", "true")
    rows = stored(feedback_app)
    assert len(rows) == before + 1
    newest = rows[-1]
    assert newest["label"] == 2 and newest["predicted"] == shown
    image = np.frombuffer(newest["image"], np.uint8).reshape(28, 28)
    assert image.max() == 255 and (image > 0).mean() > 0.05  # the drawing, centred as the model saw it
    page.screenshot(path=str(ARTIFACTS / "desktop-feedback-saved.png"), full_page=True)

    page.locator("#clear").click()
    expect(row).to_be_hidden()


def test_the_row_works_from_the_keyboard_and_is_finger_sized(page, feedback_app, digit_strokes):
    from playwright.sync_api import expect
    before = len(stored(feedback_app))
    draw_with_mouse(page, digit_strokes[1])
    expect_a_digit(page)
    page.locator("#clear").focus()
    for _ in range(40):  # Tab along the page until a correction button has the focus
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('feedback-label')"):
            break
    assert page.evaluate("() => document.activeElement.dataset.label") == "0"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the third button: 2
    expect(page.locator("#feedback-status")).to_have_text("Saved, thank you.")
    assert [r["label"] for r in stored(feedback_app)[before:]] == [2]
    for box in (b.bounding_box() for b in page.locator(".feedback-label").all()):
        assert box["width"] >= 44 and box["height"] >= 44


def test_on_a_phone_the_buttons_are_finger_sized(browser, feedback_app, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    page, problems = _open(browser, feedback_app, **PHONE)
    try:
        draw_with_mouse(page, digit_strokes[7])
        expect_a_digit(page)
        buttons = page.locator(".feedback-label")
        expect(buttons.first).to_be_visible()
        boxes = [b.bounding_box() for b in buttons.all()]
        assert all(box["width"] >= 44 and box["height"] >= 44 for box in boxes)
        assert max(box["x"] + box["width"] for box in boxes) <= PHONE["viewport"]["width"]
        page.locator('.feedback-label[data-label="4"]').tap()
        expect(page.locator("#feedback-status")).to_have_text("Saved, thank you.")
        page.screenshot(path=str(ARTIFACTS / "phone-feedback-saved.png"), full_page=True)
    finally:
        page.context.close()
    assert problems == []


def test_the_row_is_absent_when_corrections_are_off(browser, tmp_path, digit_strokes):  # noqa: F811
    app, server, thread = serve({"FEEDBACK": False, "DATA_DIR": str(tmp_path)})
    try:
        page, problems = _open(browser, app, viewport={"width": 1100, "height": 800})
        draw_with_mouse(page, digit_strokes[7])
        expect_a_digit(page)
        assert page.locator("#feedback").count() == 0
        assert page.locator(".feedback-label").count() == 0
        page.context.close()
        assert problems == []
    finally:
        server.shutdown()
        thread.join(timeout=10)
