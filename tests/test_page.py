"""GET /: the stable DOM hooks exist, and the page needs nothing its own CSP forbids
(no inline script, handler or style) and nothing from another origin."""
from html.parser import HTMLParser

import pytest


class PageParser(HTMLParser):
    """Collects every start tag with its attributes, and inline script/style text."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.inline_code = []
        self._open = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open in ("script", "style") and data.strip():
            self.inline_code.append((self._open, data.strip()))

    def find(self, tag=None, **attrs):
        return [a for t, a in self.tags
                if (tag is None or t == tag) and all(a.get(k) == v for k, v in attrs.items())]


@pytest.fixture
def page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    parser = PageParser()
    parser.feed(response.get_data(as_text=True))
    return parser


def test_stable_hooks_exist(page):
    assert len(page.find("canvas", id="pad")) == 1
    assert len(page.find("button", id="clear")) == 1
    assert len(page.find(id="digit")) == 1


def test_pad_is_280_square(page):
    (pad,) = page.find("canvas", id="pad")
    assert (pad["width"], pad["height"]) == ("280", "280")


def test_clear_and_undo_are_real_buttons(page):
    for name in ("clear", "undo"):
        (button,) = page.find("button", id=name)
        assert button.get("type") == "button"


def test_phone_viewport_and_language(page):
    (viewport,) = page.find("meta", name="viewport")
    assert "width=device-width" in viewport["content"]
    assert page.find("html")[0].get("lang") == "en"


def test_status_line_is_announced(page):
    (status,) = page.find(id="status")
    assert status.get("aria-live") == "polite" or status.get("role") == "status"


def test_no_inline_script_handler_or_style(page):
    assert page.inline_code == []
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        assert not str(attrs.get("href", "")).lower().startswith("javascript:")
    scripts = page.find("script")
    assert scripts and all(s.get("src") for s in scripts)


def test_only_same_origin_assets(page, client):
    urls = [attrs[key] for _, attrs in page.tags for key in ("src", "href") if attrs.get(key)]
    assert urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//") or url.startswith("data:"), url
    for url in urls:
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


def test_scripts_need_no_eval(page, client):
    scripts = {}
    for tag in page.find("script"):
        scripts[tag["src"].rsplit("/", 1)[-1]] = client.get(tag["src"]).get_data(as_text=True)
    assert {"pad.js", "ask.js", "app.js", "number.js"} <= set(scripts)
    for name, script in scripts.items():
        assert "eval(" not in script and "new Function" not in script, name
        assert "innerHTML" not in script, name  # results are set as text, never parsed as HTML
    assert "/predict" in scripts["app.js"] and "/predict/number" in scripts["number.js"]
    assert "toBlob" in scripts["ask.js"]  # the drawing is sent as the canvas's own PNG


def test_shared_scripts_load_first_and_deferred(page):
    """pad.js and ask.js define window.digitdraw.pad/ask/percent, which app.js,
    number.js and compare.js call as they start: deferred scripts run in document order."""
    tags = page.find("script")
    names = [tag["src"].rsplit("/", 1)[-1] for tag in tags]
    assert all("defer" in tag for tag in tags), names
    for shared in ("pad.js", "ask.js"):
        for user in ("app.js", "number.js", "compare.js"):
            assert names.index(shared) < names.index(user), names


def test_stylesheet_stops_touch_scrolling_on_the_pad(client):
    css = client.get("/static/style.css").get_data(as_text=True)
    assert "touch-action: none" in css
    assert "@import" not in css and "url(http" not in css


def test_page_shows_model_identity(client, app):
    html = client.get("/").get_data(as_text=True)
    assert app.extensions["digit_model"].identity["sha256"] in html


def test_the_file_picker_and_hint_name_every_accepted_format(page, client):
    from app import formats
    (picker,) = [a for a in page.find("input") if a.get("type") == "file"]
    assert picker["accept"] == ",".join(formats.CONTENT_TYPES)
    assert formats.SUPPORTED_TEXT in client.get("/").get_data(as_text=True)


def test_the_page_still_renders_when_no_model_is_loaded(app):
    identity = app.extensions["digit_model"].identity
    app.extensions["digit_model"] = None
    response = app.test_client().get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert identity["sha256"] not in html and identity["name"] not in html
