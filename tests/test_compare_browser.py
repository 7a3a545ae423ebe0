"""The "Compare models" switch in a real browser (Debian's Chromium via Playwright):
every loaded model answers the same drawing, side by side, on a desktop and a phone.

The app serves the shipped CNN beside a model that always answers 3, so the
cards must show two different answers and flag the disagreement.
"""
import json
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.serving import make_server

from app import create_app
from tests.test_browser import (  # noqa: F401
    ANSWER_TIMEOUT_MS,
    ARTIFACTS,
    PHONE,
    _open,
    _QuietHandler,
    browser,
    draw_with_finger,
    draw_with_mouse,
    expect_a_digit,
)
from tests.test_models_api import write_fixed_answer_model
from tests.test_number_page import number_mode, write_and_read

pytestmark = pytest.mark.browser


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}/"
    return server, thread


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    always3 = write_fixed_answer_model(tmp_path_factory.mktemp("models") / "always3.npz", 3)
    app = create_app({"MODELS": f"cnn,always3={always3}"})
    server, thread = serve(app)
    yield app
    server.shutdown()
    thread.join(timeout=10)


def open_page(browser, live_app, **options):  # noqa: F811
    page, problems = _open(browser, live_app, **options)
    return page, problems


def card(page, name):
    return page.locator(f'#compare-results li[data-model="{name}"]')


def test_compare_shows_every_models_answer_side_by_side(browser, live_app, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    page, problems = open_page(browser, live_app, viewport={"width": 1100, "height": 800})
    switch = page.get_by_role("switch", name="Compare models")
    expect(switch).to_be_visible()
    expect(switch).not_to_be_checked()
    expect(page.locator("#compare-results")).to_be_hidden()

    draw_with_mouse(page, digit_strokes[7])
    assert expect_a_digit(page) == 7
    switch.check()  # turning it on asks every model about the drawing already there
    expect(page.locator("#compare-results li")).to_have_count(2)
    expect(card(page, "cnn").locator(".compare-digit")).to_have_text("7", timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "always3").locator(".compare-digit")).to_have_text("3", timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "cnn").locator(".compare-name")).to_have_text("cnn (default)")
    expect(card(page, "always3").locator(".compare-meta")).to_contain_text("784-10 · 7,850 parameters")
    expect(card(page, "always3")).to_have_class(re.compile(r"\bdisagrees\b"))
    expect(card(page, "cnn")).not_to_have_class(re.compile(r"\bdisagrees\b"))
    expect(card(page, "cnn")).to_have_attribute("aria-label", re.compile(r"^cnn: 7, [<>]?\d+(\.\d)?% sure$"))
    expect(card(page, "always3").locator(".compare-confidence")).to_have_text(re.compile(r"% sure$"))
    # On a desktop screen the models' answers sit beside the pad and the page's
    # answer, all in view at once (they used to sit below the fold, under both).
    page.evaluate("window.scrollTo(0, 0)")
    cards = ('#compare-results li[data-model="cnn"]', '#compare-results li[data-model="always3"]')
    for part in ("#pad", "#digit", *cards):
        expect(page.locator(part)).to_be_in_viewport(ratio=1)
    page.screenshot(path=str(ARTIFACTS / "compare-desktop.png"), full_page=True)

    page.locator("#clear").click()  # cleared drawing: no stale answers
    expect(card(page, "cnn").locator(".compare-digit")).to_have_text("–")
    expect(card(page, "always3").locator(".compare-digit")).to_have_text("–")

    draw_with_mouse(page, digit_strokes[1])  # while on, every new stroke is compared at once
    assert expect_a_digit(page) == 1
    expect(card(page, "cnn").locator(".compare-digit")).to_have_text("1", timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "always3").locator(".compare-digit")).to_have_text("3", timeout=ANSWER_TIMEOUT_MS)

    switch.press("Space")  # the keyboard turns it off again
    expect(switch).not_to_be_checked()
    expect(page.locator("#compare-results")).to_be_hidden()
    page.context.close()
    assert problems == []


def record_predict_requests(page):
    """The model each POST /predict names, in order ('' for the page's main answer)."""
    asked = []

    def note(request):
        url = urlsplit(request.url)
        if request.method == "POST" and url.path == "/predict":
            asked.append(parse_qs(url.query).get("model", [""])[0])
    page.on("request", note)
    return asked


def draw_on_pad(page, strokes):
    page.locator("#pad").scroll_into_view_if_needed()  # controls below the fold scroll it away
    draw_with_mouse(page, strokes)


def expect_cards(page, cnn, always3):
    from playwright.sync_api import expect
    expect(card(page, "cnn").locator(".compare-digit")).to_have_text(cnn, timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "always3").locator(".compare-digit")).to_have_text(always3, timeout=ANSWER_TIMEOUT_MS)


def test_compare_keeps_up_with_clear_corrections_number_mode_and_switching_off(
        browser, live_app, digit_strokes):  # noqa: F811
    """The whole page as merged (number mode, the corrections row, compare): every
    drawing after a Clear is asked of every model; number mode asks none of them;
    switched off, only the main answer is asked for, and on again, the drawing
    on the pad is compared at once."""
    from playwright.sync_api import expect
    page, problems = open_page(browser, live_app, viewport={"width": 1100, "height": 800})
    asked = record_predict_requests(page)
    switch = page.get_by_role("switch", name="Compare models")
    corrections = page.locator("#feedback")
    switch.check()
    expect(page.locator("#compare-results li")).to_have_count(2)

    for digit in (7, 1, 7):  # each drawing after a Clear, like the first
        page.locator("#clear").click()
        expect(corrections).to_be_hidden()
        expect_cards(page, "–", "–")
        asked.clear()
        draw_on_pad(page, digit_strokes[digit])
        assert expect_a_digit(page) == digit
        expect_cards(page, str(digit), "3")
        expect(corrections).to_be_visible()
        # The default model's card shows the page's own answer: it is not asked twice.
        assert sorted(set(asked)) == ["", "always3"], asked

    with page.expect_response(lambda r: r.url.endswith("/feedback")) as saved:
        page.locator('.feedback-label[data-label="7"]').click()  # a correction does not upset compare
    assert saved.value.status == 201
    expect_cards(page, "7", "3")

    asked.clear()
    # Both answers to the stroke must be back before Undo: a late main answer would
    # satisfy the Undo's wait below before Undo's own requests had gone out.
    with page.expect_response(lambda r: r.url.endswith("/predict?model=always3"), timeout=ANSWER_TIMEOUT_MS), \
            page.expect_response(lambda r: r.url.endswith("/predict"), timeout=ANSWER_TIMEOUT_MS):
        draw_on_pad(page, [[(0.35, 0.55), (0.75, 0.55)]])  # a second stroke: a crossed 7
    with page.expect_response(lambda r: r.url.endswith("/predict"), timeout=ANSWER_TIMEOUT_MS) as undone:
        page.locator("#undo").click()  # Undo asks every model about what is left
    assert undone.value.json()["digit"] == 7
    expect_cards(page, "7", "3")
    assert expect_a_digit(page) == 7
    assert sorted(asked) == ["", "", "always3", "always3"], asked

    asked.clear()
    number_mode(page)
    write_and_read(page, [2, 0, 2, 6])
    assert asked == [], "number mode asked /predict, not only /predict/number"
    page.locator("#mode-digit").click()
    expect(page.locator("#digit")).to_have_text("7")  # digit mode kept its drawing and answers
    expect_cards(page, "7", "3")
    page.locator("#clear").click()
    draw_on_pad(page, digit_strokes[1])
    assert expect_a_digit(page) == 1
    expect_cards(page, "1", "3")

    switch.uncheck()
    expect(page.locator("#compare-results")).to_be_hidden()
    page.locator("#clear").click()
    asked.clear()
    draw_on_pad(page, digit_strokes[0])
    assert expect_a_digit(page) == 0
    assert asked and set(asked) == {""}, f"switched off, yet the models were asked: {asked}"
    expect_cards(page, "–", "–")  # nothing stale waits behind the switch

    asked.clear()
    switch.check()  # on again: the drawing already there is compared at once
    expect_cards(page, "0", "3")
    assert asked == ["always3"]  # the default model's card shows the answer the page has
    page.context.close()
    assert problems == []


def test_compare_on_a_phone_fits_the_screen_and_works_by_touch(browser, live_app, digit_strokes):  # noqa: F811
    from playwright.sync_api import expect
    page, problems = open_page(browser, live_app, **PHONE)
    switch = page.get_by_role("switch", name="Compare models")
    page.locator(".compare-switch").tap()
    expect(switch).to_be_checked()
    label_box = page.locator(".compare-switch").bounding_box()
    assert label_box["height"] >= 44, "the switch is too small a touch target"

    cdp = page.context.new_cdp_session(page)
    page.locator("#pad").scroll_into_view_if_needed()  # the switch sits below the pad on a phone
    draw_with_finger(page, cdp, digit_strokes[7][0])
    expect(card(page, "cnn").locator(".compare-digit")).to_have_text("7", timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "always3").locator(".compare-digit")).to_have_text("3", timeout=ANSWER_TIMEOUT_MS)
    width = page.evaluate("() => document.documentElement.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    card(page, "cnn").scroll_into_view_if_needed()
    boxes = [card(page, name).bounding_box() for name in ("cnn", "always3")]
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes)
    assert boxes[0]["y"] == pytest.approx(boxes[1]["y"], abs=1), "the two answers are not side by side"
    page.screenshot(path=str(ARTIFACTS / "compare-phone.png"), full_page=True)
    page.context.close()
    assert problems == []


def test_when_the_page_answer_fails_its_card_says_why_and_the_others_still_answer(
        browser, live_app, digit_strokes):  # noqa: F811
    """The default model's card shows the page's own error; the other models were asked
    the same drawing and their answers stay (they used to be aborted and blanked)."""
    from playwright.sync_api import expect
    message = "The model is still loading; try again in a moment."
    page, problems = open_page(browser, live_app, viewport={"width": 1100, "height": 800})
    page.get_by_role("switch", name="Compare models").check()
    page.route(re.compile(r"/predict$"), lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"error": message})))
    draw_on_pad(page, digit_strokes[7])
    expect(page.locator("#status")).to_have_text(message, timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "cnn")).to_have_class(re.compile(r"\bfailed\b"))
    expect(card(page, "cnn").locator(".compare-confidence")).to_have_text(message)
    expect(card(page, "always3").locator(".compare-digit")).to_have_text("3", timeout=ANSWER_TIMEOUT_MS)
    expect(card(page, "always3")).not_to_have_class(re.compile(r"\bfailed\b"))
    page.context.close()
    assert [p for p in problems if "status of 503" not in p] == []


def test_with_one_model_there_is_nothing_to_compare(browser):  # noqa: F811
    app = create_app()
    server, thread = serve(app)
    try:
        page, problems = open_page(browser, app, viewport={"width": 1100, "height": 800})
        page.wait_for_load_state("networkidle")
        assert page.locator("#compare").is_hidden()
        page.context.close()
        assert problems == []
    finally:
        server.shutdown()
        thread.join(timeout=10)
