"""Reading whole numbers: segmentation on constructed cases (app/segment.py) and
POST /predict/number against the contract (forms, answers, errors, limits)."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from app import segment
from app.preprocess import clean_ink, ink_map, preprocess
from model.inference import load_model
from tests.conftest import encode
from tests.test_api import assert_json_error, png_declaring
from tools import number_eval, strokes

HEIGHT = 150   # digit height in px on the test canvas
BRUSH = 16
TOP = 60


@pytest.fixture(scope="module")
def model():
    return load_model()


# ---------------------------------------------------------------- drawing numbers

def glyph(digit, left, height=HEIGHT, top=TOP, slant=0.0):
    """The stroke font's digit as polylines (canvas px) with its box at (left, top)."""
    paths = []
    for control in strokes.FONT[digit]:
        curve = strokes._catmull_rom(control)
        x = curve[:, 0] * strokes.FONT_WIDTH * height + slant * (1.0 - curve[:, 1]) * height
        paths.append(np.stack([x, top + curve[:, 1] * height], axis=1))
    start = min(p[:, 0].min() for p in paths)
    return [p + [left - start, 0.0] for p in paths]


def width_of(paths):
    xs = np.concatenate([p[:, 0] for p in paths])
    return float(xs.max() - xs.min())


def line_of(digits, gap=0.4, height=HEIGHT):
    """Font digits left to right with `gap` (of the height) between their ink boxes."""
    paths, x = [], 30.0
    for d in digits:
        g = glyph(d, x, height)
        paths += g
        x += width_of(g) + BRUSH + gap * height
    return paths, int(x + 30)


def render(paths, width, height=TOP * 2 + HEIGHT, ink="black", brush=BRUSH):
    """Polylines -> PIL RGBA image as the page's canvas would send it."""
    segments = strokes.paths_to_segments([[(float(x), float(y)) for x, y in p] for p in paths])
    return Image.fromarray(strokes.render_segments(segments, brush, ink, (width, height)), "RGBA")


def read(image, model):
    return segment.read_number(image, model)


def pieces_of(image):
    """How many connected pieces of ink the segmenter starts from."""
    cleaned = clean_ink(ink_map(image, segment.NUMBER_WORK_SIZE))
    return len(segment.find_pieces(cleaned)[1])


def two_stroke_four(left):
    """A 4 whose upright was drawn as a second stroke that does not touch the first."""
    h, w = HEIGHT, 0.62 * HEIGHT
    return [np.array([(left + 0.3 * w, TOP), (left, TOP + 0.62 * h), (left + 0.6 * w, TOP + 0.62 * h)]),
            np.array([(left + 0.85 * w, TOP + 0.05 * h), (left + 0.85 * w, TOP + h)])]


def two_stroke_five(left):
    """A 5 whose top bar was lifted off the body: a separate piece above it."""
    body = glyph(5, left)[0]
    body = body[body[:, 1] > TOP + 0.12 * HEIGHT]      # the body without its top
    w = 0.62 * HEIGHT
    bar = np.array([(left + 0.2 * w, TOP), (left + 0.9 * w, TOP)])
    return [body, bar]


def seven_with_crossbar(left):
    h, w = HEIGHT, 0.62 * HEIGHT
    return glyph(7, left) + [np.array([(left + 0.25 * w, TOP + 0.5 * h), (left + 0.8 * w, TOP + 0.5 * h)])]


# ---------------------------------------------------------------- segmentation

def test_spaced_number_reads_left_to_right_with_leading_zero(model):
    paths, width = line_of([0, 4, 2, 7])
    reading = read(render(paths, width), model)
    assert reading.number == "0427"
    lefts = [d.box[0] for d in reading.digits]
    assert lefts == sorted(lefts)


def test_two_stroke_four_is_one_digit(model):
    four = two_stroke_four(30)
    image = render(four, 200)
    assert pieces_of(image) == 2                        # the case is what it claims
    assert read(image, model).number == "4"
    seven = glyph(7, 30 + 0.62 * HEIGHT + BRUSH + 0.3 * HEIGHT)
    assert read(render(four + seven, 360), model).number == "47"


def test_a_four_with_its_hook_apart_from_its_upright_is_one_digit(model):
    """The hook half as tall as the line, its upright standing a fifth of the
    height off to its right (some writers' 4): alone, the hook reads as a digit
    of its own; beside its upright, the model is asked and reads one 4."""
    h = HEIGHT
    left = 30 + width_of(glyph(1, 30)) + BRUSH + 0.4 * h
    hook = np.array([(left, TOP + 0.25 * h), (left, TOP + 0.7 * h), (left + 0.45 * h, TOP + 0.7 * h)])
    upright_x = left + 0.45 * h + BRUSH + 0.2 * h
    upright = np.array([(upright_x, TOP), (upright_x, TOP + h)])
    paths = glyph(1, 30) + [hook, upright] + glyph(7, upright_x + BRUSH + 0.4 * h)
    image = render(paths, int(upright_x + 0.4 * h + 200))
    cleaned = clean_ink(ink_map(image, segment.NUMBER_WORK_SIZE))
    pieces = segment.find_pieces(cleaned)[1]
    line = segment.line_height(pieces)
    assert len(pieces) == 4 and sorted(p.height < segment.FRAGMENT_SIZE * line for p in pieces) == [
        False, False, False, True]                      # the case is what it claims: one short piece
    assert read(image, model).number == "147"


def test_two_stroke_five_is_one_digit(model):
    five = two_stroke_five(30)
    image = render(five, 200)
    assert pieces_of(image) == 2
    one = glyph(1, 30 + 0.62 * HEIGHT + BRUSH + 0.3 * HEIGHT)
    reading = read(render(five + one, 360), model)
    assert reading.number == "51"
    assert abs(reading.digits[0].box[1] - (TOP - BRUSH / 2)) <= 2      # the bar is part of the 5


def test_seven_with_crossbar_is_one_digit(model):
    sevens = seven_with_crossbar(30) + seven_with_crossbar(30 + 0.62 * HEIGHT + BRUSH + 0.3 * HEIGHT)
    reading = read(render(sevens, 360), model)
    assert reading.number == "77"


def test_a_crossbar_drawn_apart_joins_its_seven(model):
    h, w = HEIGHT, 0.62 * HEIGHT
    seven = glyph(7, 45)
    # a bar left of the stem, not touching it: its own piece in the stem's columns
    bar = [np.array([(30 + 0.0 * w, TOP + 0.55 * h), (30 + 0.2 * w, TOP + 0.55 * h)])]
    image = render(seven + bar, 200)
    assert pieces_of(image) == 2
    reading = read(image, model)
    assert reading.number == "7"
    assert abs(reading.digits[0].box[0] - (30 - BRUSH / 2)) <= 2       # the bar is part of the 7


def test_digits_of_mixed_size(model):
    big_three = glyph(3, 30)
    small_one = glyph(1, 30 + 0.62 * HEIGHT + BRUSH + 0.3 * HEIGHT, height=0.55 * HEIGHT, top=TOP + 0.45 * HEIGHT)
    big_eight = glyph(8, 30 + 0.62 * HEIGHT + 2 * BRUSH + 0.65 * HEIGHT)
    reading = read(render(big_three + small_one + big_eight, 420), model)
    assert reading.number == "318"


def test_a_wide_gap_does_not_split_the_number(model):
    first, _ = line_of([2, 0])
    x = 30 + 2 * (0.62 * HEIGHT + BRUSH) + 0.4 * HEIGHT + 2.5 * HEIGHT   # two and a half digits of space
    second = glyph(2, x) + glyph(6, x + 0.62 * HEIGHT + BRUSH + 0.4 * HEIGHT)
    assert read(render(first + second, int(x + 1.7 * HEIGHT)), model).number == "2026"


def test_leaning_one_over_its_neighbour_stays_separate(model):
    # A 1 leaning right whose box reaches 0.12 of the height into the 4's box; ink apart.
    one = glyph(1, 30, slant=0.35)
    one_right = max(p[:, 0].max() for p in one) + BRUSH / 2
    four_left = one_right - 0.12 * HEIGHT
    four = glyph(4, four_left + BRUSH / 2)
    image = render(one + four, 300)
    reading = read(image, model)
    assert reading.number == "14"
    first, second = (d.box for d in reading.digits)
    assert first[2] > second[0]                         # the boxes overlap, as constructed


def loop(left, width, height=HEIGHT, top=TOP):
    """An upright ellipse (a round 0) whose ink box starts at `left`."""
    t = np.linspace(0.0, 2.0 * np.pi, 60)
    cx = left + BRUSH / 2 + width / 2
    return np.stack([cx + width / 2 * np.cos(t), top + height / 2 * (1.0 + np.sin(t))], axis=1)


def test_two_touching_loops_are_cut_where_they_meet(model):
    """Two round 0s touching side by side: one piece, most ink where they meet,
    so the emptiest column is inside a loop; the cut at half the width reads them.
    (Here the whole reads as no digit, so the choice does not hang on a tie.)"""
    width = 0.8 * HEIGHT
    second = 30 + width + BRUSH - 4
    image = render([loop(30, width), loop(second, width)], int(second + width + BRUSH + 40))
    assert pieces_of(image) == 1
    reading = read(image, model)
    assert reading.number == "00"
    assert all(d.is_digit for d in reading.digits)
    for d in reading.digits:    # renormalised in float64: the JSON's probabilities add up to 1
        assert d.probabilities.dtype == np.float64 and abs(d.probabilities.sum() - 1.0) < 1e-12
    first, after = (d.box for d in reading.digits)
    assert first[2] == after[0] and abs(first[2] - (second + BRUSH / 2)) < 0.1 * width


@pytest.mark.parametrize("aspect", [1.4, 2.0])
def test_one_wide_zero_is_offered_cuts_and_stays_one_digit(model, aspect):
    """Wide enough to be offered cuts; every cut leaves a half that reads as no digit."""
    image = render([loop(30, aspect * HEIGHT)], int(aspect * HEIGHT + BRUSH + 80))
    cleaned = clean_ink(ink_map(image, segment.NUMBER_WORK_SIZE))
    assert segment.group_pieces(segment.find_pieces(cleaned)[1])[2] == [0]   # the case is what it claims
    assert read(image, model).number == "0"


def test_a_real_crossed_zero_whose_slash_runs_past_it_stays_one_digit(model, pen_number_samples):
    """A held-out writer's crossed 0 (gmd) whose slash sticks out at its top
    right, wide enough to be offered cuts: the cut leaving the slash's tip alone
    read "01" in most drawings; a half that short is no longer a candidate."""
    zero = next(s for s in pen_number_samples if s["id"] == "gmd/kast.dat#486")
    assert zero["label"] == 0
    readings = []
    for seed in range(6):
        for ink in number_eval.INKS:
            for count in (1, 2):
                number = number_eval.compose([zero] * count, "spaced", ink, np.random.default_rng(seed))
                with number_eval.decode(number.png) as image:
                    readings.append(read(image, model).number)
    assert readings == ["0", "00"] * 12


def test_single_digit_reads_as_predict_sees_it(model):
    paths, width = line_of([7])
    image = render(paths, 280, height=280)
    reading = read(image, model)
    assert reading.number == "7"
    # Normalised exactly as a lone digit is: the same 28x28 as /predict's preprocessing.
    np.testing.assert_array_equal(reading.digits[0].pixels, preprocess(image))


@pytest.mark.parametrize("ink", ["black", "transparent", "white"])
def test_every_ink_reads_the_same(model, ink):
    paths, width = line_of([3, 5, 9], gap=0.15)
    assert read(render(paths, width, ink=ink), model).number == "359"


def test_stray_speck_is_not_a_digit(model):
    paths, width = line_of([2, 1], gap=0.4)
    speck = [np.array([(width - 20.0, TOP + HEIGHT * 0.9)])]   # a dot after the number
    reading = read(render(paths + speck, width, brush=BRUSH), model)
    assert reading.number == "21"


def test_boxes_are_in_the_uploaded_images_pixels(model):
    # 2200 px wide: worked at half size, answered in the upload's own pixels.
    paths, width = line_of([1, 9], height=HEIGHT)
    scaled = [p * 2 for p in paths]
    image = render(scaled, 2 * width + 1400, height=2 * (TOP * 2 + HEIGHT), brush=2 * BRUSH)
    reading = read(image, model)
    assert reading.number == "19"
    one = scaled[:len(glyph(1, 0))]
    left = min(p[:, 0].min() for p in one) - BRUSH        # ink reaches half the 2*BRUSH pen
    top = min(p[:, 1].min() for p in one) - BRUSH
    assert abs(reading.digits[0].box[0] - left) <= 6
    assert abs(reading.digits[0].box[1] - top) <= 6


def test_twenty_digits_are_read_and_twenty_one_refused(model):
    digits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0] * 2
    paths, width = line_of(digits, gap=0.3, height=60)
    assert read(render(paths, width, height=140, brush=7), model).number == "12345678901234567890"
    paths, width = line_of(digits + [1], gap=0.3, height=60)
    with pytest.raises(segment.TooManyDigits, match="21 .*at most 20"):
        read(render(paths, width, height=140, brush=7), model)



def test_a_contested_pair_counts_once_towards_the_limit(model):
    """19 digits and a 4 drawn in two strokes: 21 pieces, 20 digits once the 4 is joined."""
    def with_four_after(paths, width):
        scale = 60 / HEIGHT                             # the 4 shrunk to the line's height, after it
        four = [np.stack([(p[:, 0] - 30) * scale + width, (p[:, 1] - TOP) * scale + TOP], axis=1)
                for p in two_stroke_four(30)]
        return render(paths + four, int(width + 0.62 * 60 + 30), height=140, brush=7)

    image = with_four_after(*line_of([1, 2, 3, 5, 6, 7, 8, 9, 0] * 2 + [1], gap=0.3, height=60))
    assert pieces_of(image) == 21
    assert read(image, model).number == "1235678901235678901" + "4"
    image = with_four_after(*line_of([1, 2, 3, 5, 6, 7, 8, 9, 0] * 2 + [1, 2], gap=0.3, height=60))
    with pytest.raises(segment.TooManyDigits, match="holds 21 separate"):   # 22 pieces, 21 once joined
        read(image, model)


def test_confetti_is_refused_before_per_piece_work(model):
    rng = np.random.default_rng(0)
    pixels = np.full((400, 1600), 255, np.uint8)
    ys, xs = rng.integers(10, 390, 3000), rng.integers(10, 1590, 3000)
    for dy in range(3):
        for dx in range(3):
            pixels[ys + dy, xs + dx] = 0
    with pytest.raises(segment.TooManyDigits):
        read(Image.fromarray(pixels), model)


def test_nested_outlines_are_refused_before_per_candidate_work(model, monkeypatch):
    """Regression: 80 nested rectangles are 80 pieces, the tall ones each sharing
    columns with the next (a chain of contested pairs); the early refusal counted
    every pair as a join, and the work for hundreds of candidates (joins, cuts of
    the wide ones) ran, 1.4-2.6 s, before the final count refused the image. A
    group joins at most once, so half the chain stays: refused at once."""
    pixels = np.full((512, 2048), 255, np.uint8)
    for k in range(80):
        t = 3 * k
        pixels[[t, 511 - t], t:2048 - t] = 0
        pixels[t:512 - t, [t, 2047 - t]] = 0

    def per_candidate_work(*args):
        raise AssertionError("a candidate was normalised")

    monkeypatch.setattr(segment, "clean_ink_to_mnist", per_candidate_work)
    with pytest.raises(segment.TooManyDigits, match="at most 20"):
        read(Image.fromarray(pixels), model)


def test_blank_image_raises(model):
    with pytest.raises(segment.BlankImageError):
        read(Image.new("RGBA", (600, 200), (0, 0, 0, 0)), model)


# ---------------------------------------------------------------- POST /predict/number

def number_png(digits=(2, 0, 2, 6), ink="black"):
    paths, width = line_of(list(digits))
    return encode(render(paths, width, ink=ink))


def assert_number(response, expected):
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["number"] == expected
    assert len(body["digits"]) == len(expected)
    for entry, char in zip(body["digits"], expected):
        probabilities = np.array(entry["probabilities"])
        assert probabilities.shape == (10,)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)
        assert entry["digit"] == int(char) == int(np.argmax(probabilities))
        assert entry["confidence"] == pytest.approx(probabilities.max())
        assert isinstance(entry["is_digit"], bool)
        left, top, right, bottom = entry["box"]
        assert 0 <= left < right <= body["image_size"][0] and 0 <= top < bottom <= body["image_size"][1]
        header, data = entry["input_image"].split(",", 1)
        assert header == "data:image/png;base64"
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == (28, 28)
    assert body["confidence"] == pytest.approx(np.prod([d["confidence"] for d in body["digits"]]))
    lefts = [d["box"][0] for d in body["digits"]]
    assert lefts == sorted(lefts)
    return body


def test_multipart_upload(client):
    response = client.post("/predict/number", data={"image": (io.BytesIO(number_png()), "n.png")},
                           content_type="multipart/form-data")
    assert_number(response, "2026")


def test_raw_png_body_on_transparent_canvas(client):
    response = client.post("/predict/number", data=number_png((0, 4, 2, 7), ink="transparent"),
                           content_type="image/png")
    assert_number(response, "0427")


def test_json_data_url(client):
    url = "data:image/png;base64," + base64.b64encode(number_png((9, 5))).decode()
    assert_number(client.post("/predict/number", json={"image": url}), "95")


def test_jpeg_body(client):
    paths, width = line_of([3, 8])
    data = encode(render(paths, width), "JPEG", quality=85)
    assert_number(client.post("/predict/number", data=data, content_type="image/jpeg"), "38")


def test_same_answer_as_predict_for_one_digit(client):
    paths, _ = line_of([7])
    data = encode(render(paths, 280, height=280))
    single = client.post("/predict", data=data, content_type="image/png").get_json()
    number = assert_number(client.post("/predict/number", data=data, content_type="image/png"), "7")
    assert number["digits"][0]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)
    assert number["digits"][0]["input_image"] == single["input_image"]


def test_exif_rotated_photo_reads_upright_with_upright_boxes(client):
    paths, width = line_of([1, 4])
    upright = render(paths, width).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    body = assert_number(client.post("/predict/number", data=buffer.getvalue(), content_type="image/jpeg"), "14")
    assert body["image_size"] == [width, upright.height]


def test_twenty_one_digits_are_422(client):
    paths, width = line_of([1, 2, 3, 4, 5, 6, 7] * 3, gap=0.3, height=60)
    response = client.post("/predict/number", data=encode(render(paths, width, height=140, brush=7)),
                           content_type="image/png")
    assert "at most 20" in assert_json_error(response, 422)


def test_blank_is_422(client):
    response = client.post("/predict/number", data=encode(Image.new("RGB", (600, 200), "white")),
                           content_type="image/png")
    assert assert_json_error(response, 422) == "The image holds no ink (it is blank); draw or photograph a number."


@pytest.mark.parametrize("data, content_type, status", [
    (b"", "image/png", 400),
    (b"not an image at all", "image/png", 400),
    (b"{nope", "application/json", 400),
    (b'{"image": "%%%"}', "application/json", 400),
    (b"hello", "text/plain", 415),
])
def test_bad_input_is_a_json_error(client, data, content_type, status):
    assert_json_error(client.post("/predict/number", data=data, content_type=content_type), status)


def test_wrong_field_name_is_400(client):
    response = client.post("/predict/number", data={"file": (io.BytesIO(number_png()), "n.png")},
                           content_type="multipart/form-data")
    assert "'image'" in assert_json_error(response, 400)


def test_image_bomb_is_413_before_decoding(client):
    response = client.post("/predict/number", data=png_declaring(30000, 30000, complete=False),
                           content_type="image/png")
    assert_json_error(response, 413)


def test_tiff_is_415(client):
    paths, width = line_of([1, 2])
    assert_json_error(client.post("/predict/number", data=encode(render(paths, width).convert("RGB"), "TIFF"),
                                  content_type="image/png"), 415)


def test_get_is_405(client):
    response = client.get("/predict/number")
    assert_json_error(response, 405)
    assert "POST" in response.headers["Allow"]


def test_body_over_limit_is_413(client, app):
    limit = app.config["MAX_BODY_BYTES"]
    response = client.post("/predict/number", data=b"\0" * (limit + 1), content_type="image/png")
    assert_json_error(response, 413)


# ---------------------------------------------------------------- the answer's JSON, field by field

class _Identity:
    identity = {"name": "stand-in", "sha256": "0123456789ab", "test_accuracy": 0.5}


def _digit(digit, confidence, is_digit=True, not_digit=0.123456, box=(1, 2, 3, 4)):
    probabilities = np.full(10, (1.0 - confidence) / 9)
    probabilities[digit] = confidence
    return segment.Digit(digit=digit, confidence=confidence, probabilities=probabilities, is_digit=is_digit,
                         not_digit=not_digit, box=list(box), pixels=np.zeros((28, 28), np.uint8))


def test_describe_fills_every_field_of_the_contract():
    from app.number_api import describe
    reading = segment.Reading([_digit(4, 0.9, not_digit=0.0123456), _digit(2, 0.8, box=(10, 2, 20, 30))])
    body = describe(reading, (300, 120), _Identity(), elapsed_ms=12.34567)
    assert list(body) == ["number", "confidence", "digits", "unsure", "image_size", "max_digits", "model",
                          "elapsed_ms"]
    assert body["number"] == "42"
    assert body["confidence"] == pytest.approx(0.72)
    assert body["unsure"] is False
    assert body["image_size"] == [300, 120]
    assert body["max_digits"] == segment.MAX_DIGITS
    assert body["model"] == _Identity.identity
    assert body["elapsed_ms"] == 12.35
    first = body["digits"][0]
    assert list(first) == ["digit", "confidence", "probabilities", "is_digit", "box", "not_digit_score",
                           "unsure", "input_image"]
    assert first["not_digit_score"] == 0.0123
    assert first["box"] == [1, 2, 3, 4] and body["digits"][1]["box"] == [10, 2, 20, 30]
    assert first["probabilities"] == pytest.approx(list(reading.digits[0].probabilities))


@pytest.mark.parametrize("confidence, is_digit, unsure", [
    (0.6, True, False),     # exactly at the threshold: sure
    (0.5999, True, True),   # below it
    (0.99, False, True),    # sure of the digit, but not a digit at all
])
def test_a_digit_is_unsure_below_the_threshold_or_when_not_a_digit(confidence, is_digit, unsure):
    from app.api import UNSURE_BELOW
    from app.number_api import describe
    assert UNSURE_BELOW == 0.6
    body = describe(segment.Reading([_digit(7, 0.95), _digit(1, confidence, is_digit=is_digit)]), (10, 10),
                    _Identity(), elapsed_ms=1.0)
    assert body["digits"][0]["unsure"] is False
    assert body["digits"][1]["unsure"] is unsure
    assert body["unsure"] is unsure  # one unsure digit makes the number unsure
