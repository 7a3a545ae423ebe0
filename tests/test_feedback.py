"""POST /feedback and GET /feedback/summary, both ways: what is accepted and stored,
what is refused and leaves the store untouched (CONTRACT.md, "Corrections").

These run on the default SQLite store in a temporary DATA_DIR; the same store
code against PostgreSQL is exercised in test_store.py.
"""
import base64
import io
import sqlite3

import numpy as np
import pytest
from PIL import Image

from app import create_app
from app.config import SQLITE_FILENAME, SettingError, from_env
from app.feedback import STORE_KEY
from app.store import StoreError
from tests.conftest import encode


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def make_app(data_dir):
    def make(**config):
        return create_app({"TESTING": True, "DATA_DIR": str(data_dir), **config})
    return make


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def stored_rows(client):
    return client.application.extensions[STORE_KEY].rows(with_uploads=True)


def count(client):
    response = client.get("/feedback/summary")
    assert response.status_code == 200
    return response.get_json()["count"]


def as_multipart(png, label):
    data = {"image": (io.BytesIO(png), "digit.png")}
    if label is not None:
        data["label"] = label
    return {"data": data, "content_type": "multipart/form-data"}


def as_json(png, label):
    body = {"image": "data:image/png;base64," + base64.b64encode(png).decode()}
    if label is not None:
        body["label"] = label
    return {"json": body}


def as_raw(png, label):
    query = "" if label is None else f"?label={label}"
    return {"data": png, "content_type": "image/png", "query_string": query[1:]}


FORMS = {"multipart": as_multipart, "json": as_json, "raw": as_raw}


# ---------------------------------------------------------------- accepted

@pytest.mark.parametrize("form", FORMS)
def test_each_form_stores_the_drawing_with_its_label(client, digit_png, form):
    png = digit_png(7)
    response = client.post("/feedback", **FORMS[form](png, "3"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["label"] == 3 and isinstance(body["id"], str) and len(body["id"]) >= 16
    [row] = stored_rows(client)
    assert row["id"] == body["id"] and row["label"] == 3
    assert client.get("/feedback/summary").get_json() == {
        "count": 1, "per_label": {str(d): int(d == 3) for d in range(10)}}


@pytest.mark.parametrize("label", [0, 9])
def test_json_label_may_be_a_number(client, digit_png, label):
    response = client.post("/feedback", **as_json(digit_png(7), label))
    assert response.status_code == 201
    assert response.get_json()["label"] == label


def test_what_is_stored_is_what_the_model_saw_and_said(client, digit_png):
    png = digit_png(7)
    predicted = client.post("/predict", data=png, content_type="image/png").get_json()
    response = client.post("/feedback?label=1", data=png, content_type="image/png")
    assert response.status_code == 201
    [row] = stored_rows(client)
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(predicted["input_image"].split(",")[1]))))
    assert np.array_equal(np.frombuffer(row["image"], np.uint8).reshape(28, 28), seen)
    assert row["predicted"] == predicted["digit"] == 7
    assert row["confidence"] == pytest.approx(predicted["confidence"], abs=1e-6)
    model = client.application.extensions["digit_model"]
    assert row["model_sha256"] == model.meta["weights_sha256"] and len(row["model_sha256"]) == 64
    assert row["model_name"] == model.meta["name"]
    assert row["is_digit"] is True
    assert row["upload"] is None  # not kept unless FEEDBACK_KEEP_UPLOADS is on
    assert row["created_at"] is not None


def test_nothing_identifying_the_sender_is_stored(client, digit_png, data_dir):
    address, forwarded, agent = "203.0.113.77", "198.51.100.23", "Sender-Agent/9.9 (unique-marker)"
    response = client.post("/feedback?label=4", data=digit_png(7), content_type="image/png",
                           environ_base={"REMOTE_ADDR": address},
                           headers={"X-Forwarded-For": forwarded, "User-Agent": agent,
                                    "Cookie": "session=secret-cookie-value"})
    assert response.status_code == 201
    client.application.extensions[STORE_KEY].close()
    everything = b"".join(p.read_bytes() for p in data_dir.iterdir())  # database file, WAL and all
    for trace in (address, forwarded, "unique-marker", "secret-cookie-value"):
        assert trace.encode() not in everything
    assert b"4" in everything  # sanity: the files do hold the data


def test_uploads_are_kept_only_when_switched_on_and_small_enough(make_app, digit_png):
    png = digit_png(7)
    kept = make_app(FEEDBACK_KEEP_UPLOADS=True, FEEDBACK_UPLOAD_MAX_BYTES=len(png)).test_client()
    response = kept.post("/feedback?label=7", data=png, content_type="image/png")
    assert response.status_code == 201 and response.get_json()["upload_kept"] is True
    assert stored_rows(kept)[-1]["upload"] == png

    big = encode(Image.open(io.BytesIO(png)).convert("RGBA"), "BMP")  # same drawing, far more bytes
    response = kept.post("/feedback?label=7", data=big, content_type="image/bmp")
    assert response.status_code == 201 and response.get_json()["upload_kept"] is False
    assert stored_rows(kept)[-1]["upload"] is None
    assert count(kept) == 2  # the correction itself is still stored


# ---------------------------------------------------------------- refused

BAD_LABELS = ["10", "-1", "seven", "3.5", "", "1 2", "٣"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("label", [None, *BAD_LABELS])
def test_a_missing_or_bad_label_is_refused_and_nothing_stored(client, digit_png, form, label):
    response = client.post("/feedback", **FORMS[form](digit_png(7), label))
    assert response.status_code == 400
    message = response.get_json()["error"]
    assert "label" in message and ("missing" in message if label is None else "0-9" in message)
    assert count(client) == 0


@pytest.mark.parametrize("label,shown", [
    (True, "not true"), (False, "not false"),          # JSON booleans are not 1 and 0
    (10, "got 10;"), (3.5, "got 3.5;"), ([3], "got [3];"),
    ("12", "got '12';"),                                 # a string is quoted, so "" and " " show
    ("7" * 100, "got '" + "7" * 39 + ";"),               # what was sent is cut to 40 characters
])
def test_a_bad_label_is_shown_back_as_sent(client, digit_png, label, shown):
    body = {"image": base64.b64encode(digit_png(7)).decode(), "label": label}
    response = client.post("/feedback", json=body)
    assert response.status_code == 400 and shown in response.get_json()["error"]
    assert count(client) == 0


@pytest.mark.parametrize("label", [10, -1, 3.5, True, None, [3], {"d": 3}])
def test_bad_json_labels_are_refused(client, digit_png, label):
    body = {"image": base64.b64encode(digit_png(7)).decode(), "label": label}
    response = client.post("/feedback", json=body)
    assert response.status_code == 400 and "label" in response.get_json()["error"]
    assert count(client) == 0


def test_a_blank_drawing_is_refused(client):
    blank = encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "PNG")
    response = client.post("/feedback?label=3", data=blank, content_type="image/png")
    assert response.status_code == 422
    assert response.get_json()["error"] == "The image holds no ink (it is blank); there is no drawing to correct."
    assert count(client) == 0


def test_without_a_model_corrections_are_503_and_nothing_stored(make_app, digit_png):
    app = make_app()
    app.extensions["digit_model"] = None
    client = app.test_client()
    response = client.post("/feedback?label=3", data=digit_png(7), content_type="image/png")
    assert response.status_code == 503
    assert response.get_json()["error"] == "The model is not loaded; the server cannot take corrections right now."
    assert client.get("/feedback/summary").get_json()["count"] == 0


@pytest.mark.parametrize("send, status", [
    (dict(data=b"not an image", content_type="image/png"), 400),
    (dict(data=b"GIF89a" + b"\0" * 20, content_type="image/gif"), 400),
    (dict(data=encode(Image.new("L", (8, 8)), "TIFF"), content_type="image/png"), 415),
    (dict(data=b"hello", content_type="text/plain"), 415),
    (dict(json={"label": 3}), 400),
])
def test_bad_images_are_refused_as_for_predict(client, send, status):
    response = client.post("/feedback?label=3", **send)
    assert response.status_code == status
    assert response.mimetype == "application/json" and response.get_json()["error"]
    assert count(client) == 0


def test_oversized_bodies_and_images_get_413(make_app, digit_png):
    client = make_app(MAX_BODY_BYTES=2000, MAX_IMAGE_PIXELS=300 * 300).test_client()
    response = client.post("/feedback?label=3", data=b"\x89PNG" + b"\0" * 5000, content_type="image/png")
    assert response.status_code == 413
    wide = encode(Image.new("L", (400, 400), 255), "PNG")  # few bytes, too many pixels
    response = client.post("/feedback?label=3", data=wide, content_type="image/png")
    assert response.status_code == 413 and "pixels" in response.get_json()["error"]
    assert count(client) == 0


def test_wrong_method_is_405(client):
    assert client.get("/feedback").status_code == 405
    assert client.post("/feedback/summary").status_code == 405


def test_switched_off_both_routes_answer_404_and_nothing_is_written(make_app, digit_png, data_dir):
    client = make_app(FEEDBACK=False).test_client()
    for response in (client.post("/feedback?label=3", data=digit_png(7), content_type="image/png"),
                     client.get("/feedback/summary")):
        assert response.status_code == 404
        assert response.get_json()["error"] == ("Corrections are switched off on this server (FEEDBACK=off); "
                                                "POST /predict still classifies images.")
    assert client.post("/predict", data=digit_png(7), content_type="image/png").status_code == 200
    assert not data_dir.exists()  # no database file is even created


def test_beyond_the_cap_new_corrections_are_refused_and_nothing_else_changes(make_app, digit_png, log_records):
    warnings = log_records("digitdraw")
    client = make_app(FEEDBACK_MAX=2).test_client()
    for label in (1, 2):
        assert client.post(f"/feedback?label={label}", data=digit_png(7), content_type="image/png").status_code == 201
    response = client.post("/feedback?label=3", data=digit_png(7), content_type="image/png")
    assert response.status_code == 507
    assert response.get_json()["error"] == ("This server already stores its maximum of 2 corrections and takes no "
                                            "more; predictions still work. The operator can raise FEEDBACK_MAX.")
    assert {"event": "corrections_full", "cap": 2} in [r.msg for r in warnings]
    summary = client.get("/feedback/summary").get_json()
    assert summary["count"] == 2 and summary["per_label"]["3"] == 0
    assert client.post("/predict", data=digit_png(7), content_type="image/png").get_json()["digit"] == 7


# ---------------------------------------------------------------- lifetime

def test_corrections_survive_a_restart(make_app, digit_png):
    first = make_app().test_client()
    ids = [first.post("/feedback?label=5", data=digit_png(d), content_type="image/png").get_json()["id"]
           for d in (1, 7)]
    first.application.extensions[STORE_KEY].close()
    again = make_app().test_client()
    assert [row["id"] for row in stored_rows(again)] == ids
    assert again.get("/feedback/summary").get_json()["per_label"]["5"] == 2


def test_the_sqlite_file_uses_wal_in_data_dir(client, digit_png, data_dir):
    client.post("/feedback?label=5", data=digit_png(7), content_type="image/png")
    with sqlite3.connect(data_dir / SQLITE_FILENAME) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_page_shows_the_correction_row_only_when_switched_on(make_app):
    on = make_app().test_client().get("/").get_data(as_text=True)
    assert 'id="feedback"' in on and "feedback.js" in on
    assert on.count('class="feedback-label"') == 10
    off = make_app(FEEDBACK=False).test_client().get("/").get_data(as_text=True)
    assert 'id="feedback"' not in off and "feedback.js" not in off


# ---------------------------------------------------------------- settings

def test_settings_from_the_environment():
    settings = from_env({"FEEDBACK": "off", "DATA_DIR": "/srv/data", "FEEDBACK_MAX": "50",
                         "DATABASE_URL": "postgresql://u:p@db:5432/digits"})
    assert settings["FEEDBACK"] is False and settings["DATA_DIR"] == "/srv/data"
    assert settings["FEEDBACK_MAX"] == 50
    assert settings["DATABASE_URL"] == "postgresql+psycopg://u:p@db:5432/digits"
    assert from_env({})["FEEDBACK"] is True


@pytest.mark.parametrize("environ, named", [
    ({"FEEDBACK": "maybe"}, "FEEDBACK must be on or off"),
    ({"FEEDBACK_MAX": "0"}, "FEEDBACK_MAX must be at least 1"),
    ({"FEEDBACK_UPLOAD_MAX_BYTES": "lots"}, "FEEDBACK_UPLOAD_MAX_BYTES must be a whole number"),
    ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be postgresql://"),
])
def test_bad_settings_are_named(environ, named):
    with pytest.raises(SettingError, match=named):
        from_env(environ)


def test_an_unwritable_data_dir_stops_start_up_with_a_clear_message(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="set DATA_DIR to a writable folder"):
        create_app({"DATA_DIR": str(blocker / "data")})
