"""Real people's pen writing: the drawing of pen strokes, the evaluation that replays
them through the API's own path, the training renders, and "not a digit"."""
import math

import numpy as np
import pytest
from PIL import Image

from model import modelfile, rejection
from model.datasets import MnistError, load_extra
from model.inference import load_model
from tests.conftest import draw_strokes, encode
from tests.pen_data import pen
from tools import pen_dataset, pen_eval, pendata, shapes
from tools import strokes as canvas

# The shipped model on held-out institutions (gmd, app), default canvas: 99.45%
# measured on all 2,191 of their digits (docs/pen.md); 99.0% on the 400-digit
# sample below, so the floor leaves room for its noise. The MNIST-only model
# that shipped before scores 93.25% on this same sample and fails it.
HELD_OUT_FLOOR = 0.96


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.fixture(scope="module")
def held_out_sample():
    digits = pendata.by_institution(pen("digits"), pendata.HOLDOUT)
    return pendata.stratified(digits, 20, key=lambda s: (s["inst"], s["label"]), seed=3)


# --------------------------------------------------------------------------- data and drawing

def test_institution_split_keeps_held_out_writers_out_of_training():
    digits = pen("digits")
    pool = pendata.by_institution(digits, exclude=pendata.HOLDOUT + pendata.CALIBRATION)
    assert pool and not {s["inst"] for s in pool} & set(pendata.HOLDOUT + pendata.CALIBRATION)
    assert {s["inst"] for s in pendata.by_institution(digits, pendata.HOLDOUT)} == set(pendata.HOLDOUT)


def test_non_digits_leave_out_digit_shaped_characters():
    kept = {c["label"] for c in pendata.non_digits(pen("chars"))}
    assert {"A", "x", "#", "+", "M"} <= kept
    assert not kept & {"O", "o", "l", "I", "S", "Z", "B", "g"}


def test_stratified_takes_at_most_n_per_group_and_is_seeded():
    items = [{"g": i % 3, "i": i} for i in range(30)]
    picked = pendata.stratified(items, 4, key=lambda s: s["g"], seed=1)
    assert sorted(sum(1 for p in picked if p["g"] == g) for g in range(3)) == [4, 4, 4]
    assert picked == pendata.stratified(items, 4, key=lambda s: s["g"], seed=1)
    assert picked != pendata.stratified(items, 4, key=lambda s: s["g"], seed=2)


@pytest.mark.parametrize("variant", canvas.VARIANTS)
def test_a_pen_digit_is_drawn_inside_the_canvas_in_each_variant(variant):
    sample = next(s for s in pen("digits") if s["label"] == 8)
    rgba = pendata.draw(sample["strokes"], variant, np.random.default_rng(0))
    assert rgba.shape == (canvas.CANVAS, canvas.CANVAS, 4) and rgba.dtype == np.uint8
    ink = rgba[..., 3] > 0 if variant == "transparent" else (
        rgba[..., 0] > 127 if variant == "inverted" else rgba[..., 0] < 128)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    height = rows[-1] - rows[0] + 1
    low, high = canvas.STYLES[variant].size
    assert low * canvas.CANVAS * 0.9 <= height <= high * canvas.CANVAS + 2
    if not canvas.STYLES[variant].corner:  # near the centre, clear of every edge
        assert 0 < cols[0] and cols[-1] < canvas.CANVAS - 1 and 0 < rows[0] and rows[-1] < canvas.CANVAS - 1


def test_a_dot_stroke_draws_a_round_mark():
    rgba = pendata.draw([[[500, 500]]], "default", np.random.default_rng(0), brush=20, size=0.0)
    ink = rgba[..., 0] < 128
    assert 250 < ink.sum() < 400  # a disc of diameter 20 is 314 px


def test_slant_changes_the_drawing():
    sample = pen("digits")[0]["strokes"]
    plain = pendata.draw(sample, "default", np.random.default_rng(0))
    slanted = pendata.draw(sample, "default", np.random.default_rng(0), linear=[[1, 0.4], [0, 1]])
    assert np.mean(plain != slanted) > 0.01


@pytest.mark.parametrize("name", sorted(shapes.ALL_GENERATORS))
def test_every_doodle_is_pen_strokes_in_a_1000_box(name):
    for seed in range(5):
        pen_strokes, size = shapes.ALL_GENERATORS[name](np.random.default_rng(seed))
        points = np.array([p for stroke in pen_strokes for p in stroke])
        assert points.min() >= 0 and points.max() <= 1000
        assert points.max() == 1000 or len(points) == 1
        assert 0.0 <= size <= 0.9


def test_lines_stay_away_from_the_vertical_of_a_one():
    for seed in range(50):
        (stroke,), _ = shapes.line(np.random.default_rng(seed))
        (x0, y0), (x1, y1) = stroke[0], stroke[-1]
        assert abs(math.degrees(math.atan2(y1 - y0, x1 - x0))) % 180 not in range(40, 141)


def test_chevron_arms_are_neither_a_bar_nor_an_upright():
    """Each arm of a '>' or '<' leaves the horizontal at 25-60 degrees (give or take the
    jitter of its points): flatter is a 7's bar, steeper a bent 1, and both must stay digits."""
    pointing = set()
    for seed in range(200):
        pen_strokes, _ = shapes.chevron(np.random.default_rng(seed))
        points = np.array([p for stroke in pen_strokes for p in stroke], dtype=float)
        ends = points[np.argmin(points[:, 1])], points[np.argmax(points[:, 1])]  # of the upper and lower arm
        ends_x = (ends[0][0] + ends[1][0]) / 2
        right = points[:, 0].max() - ends_x > ends_x - points[:, 0].min()  # the tip is across from the ends
        tip = points[np.argmax(points[:, 0])] if right else points[np.argmin(points[:, 0])]
        pointing.add(">" if right else "<")
        for end in ends:
            dx, dy = abs(tip[0] - end[0]), abs(tip[1] - end[1])
            assert 23 <= math.degrees(math.atan2(dy, dx)) <= 62, (seed, tip, end)
    assert pointing == {">", "<"}


def test_extra_doodles_are_drawn_only_when_named(tmp_path):
    """The default doodle set (what the shipped model's training and calibration files
    hold) is unchanged; --shape-kinds draws the named kinds in turn."""
    def shape_sources(*extra):
        args = pen_dataset.parse_args(["--out", str(tmp_path / "x.npz"), "--renders", "0", "--char-renders", "0",
                                       "--shapes", "20", *extra])
        _, _, sources, _ = pen_dataset.plan(args, [], [], None)
        return sources

    assert shape_sources() == ["shape:" + name for name in sorted(shapes.GENERATORS)] * 2 + [
        "shape:" + name for name in sorted(shapes.GENERATORS)][:20 - 2 * len(shapes.GENERATORS)]
    assert "chevron" not in shapes.GENERATORS
    assert shape_sources("--shape-kinds", "chevron") == ["shape:chevron"] * 20
    assert shape_sources("--shape-kinds", "chevron,dot")[:4] == ["shape:chevron", "shape:dot"] * 2


def test_an_unknown_doodle_kind_is_refused_before_any_drawing(capsys):
    with pytest.raises(SystemExit) as refused:
        pen_dataset.parse_args(["--out", "x.npz", "--shape-kinds", "chevron,heart"])
    assert refused.value.code == 2
    assert "no doodle kind heart; the kinds are chevron, crossed_circle, dot" in capsys.readouterr().err


# --------------------------------------------------------------------------- training renders

def test_training_renders_are_reproducible_whatever_the_process_count(tmp_path):
    args = pen_dataset.parse_args(["--out", str(tmp_path / "a.npz"), "--institutions", "lou,cea",
                                   "--renders", "1", "--max-chars", "10", "--shapes", "14",
                                   "--mnist-restroke", "0", "--jobs", "1"])
    one = pen_dataset.build(args)
    args.jobs = 2
    two = pen_dataset.build(args)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    images, labels, sources, insts, meta, variants = one
    assert len(variants) == len(images) and set(variants.tolist()) <= set(canvas.VARIANTS)
    assert len(set(variants.tolist())) > 1, "every image drawn in one variant"
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    assert set(insts.tolist()) - {"-"} == {"lou", "cea"}
    assert np.sum(labels == 10) == 24  # 10 letters/symbols + 14 doodles, all "not a digit"
    assert all(s.startswith(("pen-char:", "shape:")) for s in sources[labels == 10])
    assert meta["counts"]["10"] == 24
    # what the trainer reads back
    pen_dataset.save(str(tmp_path / "a.npz"), *one)
    x, y, info = load_extra(str(tmp_path / "a.npz"))
    with np.load(tmp_path / "a.npz") as saved:
        assert np.array_equal(saved["variants"], variants)
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    assert info["per_label"]["10"] == 24 and info["institutions"] == ["cea", "lou"]


def test_training_renders_look_like_the_app_input():
    """Every render went through app.preprocess: 20 px box, centre of mass near 14."""
    sample = next(s for s in pen("digits") if s["label"] == 4)
    digit = pen_dataset.render(("pen", sample["strokes"], (1, 0, 0)))
    rows, cols = np.flatnonzero(digit.max(axis=1) > 30), np.flatnonzero(digit.max(axis=0) > 30)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in range(18, 23)
    mass = digit.astype(float) / digit.sum()
    assert abs((mass.sum(axis=1) * np.arange(28)).sum() - 14) < 1.0


def test_load_extra_refuses_what_is_not_training_images(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((3, 28, 28), np.float32), labels=np.zeros(3, np.uint8))
    with pytest.raises(MnistError, match="uint8"):
        load_extra(str(bad))
    np.savez(bad, images=np.zeros((3, 28, 28), np.uint8), labels=np.array([1, 2, 11], np.uint8))
    with pytest.raises(MnistError, match="0-10"):
        load_extra(str(bad))
    np.savez(bad, images=np.zeros((3, 28, 28), np.uint8), labels=np.array(["a", "b", "c"], dtype=object))
    with pytest.raises(MnistError):
        load_extra(str(bad))  # an object array would need pickle: refused


# --------------------------------------------------------------------------- the not-a-digit threshold

def test_calibration_refuses_the_chosen_share_of_digits():
    rng = np.random.default_rng(0)
    digit_scores = rng.beta(1, 30, 5000)
    other_scores = rng.beta(5, 2, 1000)
    scores = np.concatenate([digit_scores, other_scores])
    labels = np.concatenate([rng.integers(0, 10, 5000), np.full(1000, 10)])
    result = rejection.calibrate(scores, labels, digit_flag_rate=0.01)
    assert result["digits_flagged"] == pytest.approx(0.01, abs=0.002)
    assert result["non_digits_flagged"] > 0.9
    assert result["threshold"] == pytest.approx(np.quantile(digit_scores, 0.99), abs=1e-5)


def test_calibration_by_variant_holds_the_worst_variant_to_the_rate():
    """Small digits score higher than default ones: the mix's quantile would refuse
    about twice the rate of them; per variant, no variant goes over it."""
    rng = np.random.default_rng(1)
    default, small = rng.beta(1, 40, 4000), rng.beta(1, 15, 4000)
    scores = np.concatenate([default, small, rng.beta(5, 2, 500)])
    labels = np.concatenate([rng.integers(0, 10, 8000), np.full(500, 10)])
    groups = np.array(["default"] * 4000 + ["small"] * 4000 + ["default"] * 500)
    mixed = rejection.calibrate(scores, labels, digit_flag_rate=0.01)
    assert np.mean(small >= mixed["threshold"]) > 0.015, "the test data must show the problem"
    result = rejection.calibrate(scores, labels, digit_flag_rate=0.01, groups=groups)
    assert result["threshold"] == pytest.approx(np.quantile(small, 0.99), abs=1e-5)
    assert result["digits_flagged_by_variant"]["small"] == pytest.approx(0.01, abs=0.001)
    assert result["digits_flagged_by_variant"]["default"] < 0.005
    assert result["digits_flagged"] == pytest.approx(np.mean(np.concatenate([default, small]) >= result["threshold"]))


def test_calibration_threshold_stays_in_bounds():
    labels = np.array([1, 2, 3, 10])
    assert rejection.calibrate(np.array([0.0, 0.0, 0.0, 1.0]), labels)["threshold"] == rejection.THRESHOLD_BOUNDS[0]
    assert rejection.calibrate(np.array([1.0, 1.0, 1.0, 1.0]), labels)["threshold"] == rejection.THRESHOLD_BOUNDS[1]
    with pytest.raises(ValueError):
        rejection.calibrate(np.array([0.5]), np.array([10]))


def test_not_digit_share_is_the_softmax_of_the_eleventh_output():
    logits = np.array([[0.0] * 10 + [math.log(10.0)], [5.0] + [0.0] * 10], dtype=np.float32)
    share = rejection.not_digit_share(logits)
    assert share[0] == pytest.approx(0.5, abs=1e-6)
    assert share[1] == pytest.approx(1 / (math.exp(5) + 10), rel=1e-5)


def test_calibration_report_exactly():
    """Every key of what the trainer writes into the model file, on scores where the
    threshold lands on a drawn score: a drawing that reaches it is refused."""
    digits = [0.1, 0.2, 0.3, 0.4, 0.5123456789]
    scores = np.array(digits + [0.5123456789, 0.05, 0.95])
    labels = np.array([1, 2, 3, 4, 5, 10, 10, 10])
    assert rejection.calibrate(scores, labels, digit_flag_rate=0.0) == {
        "class": 10, "threshold": 0.512346, "target_digit_flag_rate": 0.0,
        "calibration_digits": 5, "calibration_non_digits": 3,
        "digits_flagged": 0.2,                    # the one digit at the threshold
        "non_digits_flagged": 2 / 3,              # the non-digit at it, and the one above
    }
    groups = np.array(["small", "default", "default", "default", "small", "small", "small", "small"])
    by_variant = rejection.calibrate(scores, labels, digit_flag_rate=0.0, groups=groups)
    assert by_variant["digits_flagged_by_variant"] == {"default": 0.0, "small": 0.5}


def test_calibration_without_non_digits_says_so_instead_of_a_rate():
    result = rejection.calibrate(np.array([0.1, 0.2, 0.3]), np.array([1, 2, 3]))
    assert result["non_digits_flagged"] is None and result["calibration_non_digits"] == 0
    with pytest.raises(ValueError, match="^calibration needs real digits to measure how many would be refused$"):
        rejection.calibrate(np.array([0.5]), np.array([10]))


def test_not_digit_share_is_float32_and_finite_for_any_logits():
    """Each row is shifted by its own maximum: a row of large logits beside a row of
    small ones neither overflows nor turns the other into 0/0."""
    logits = np.array([[1000.0] * 10 + [1000.0 + math.log(10.0)], [0.0] * 11], dtype=np.float64)
    share = rejection.not_digit_share(logits)
    assert share.dtype == np.float32
    assert share == pytest.approx([0.5, 1 / 11], rel=1e-4)  # 1002.3 in float32 is within 6e-5


# --------------------------------------------------------------------------- the shipped model on pen writing

@pytest.mark.slow
def test_shipped_model_reads_held_out_writers(shipped, held_out_sample):
    result = pen_eval.evaluate_digits(shipped, held_out_sample, variants=("default",), seed=0)
    summary = pen_eval.summarize(result)
    assert summary["count"] == 400
    assert summary["variants"]["default"]["accuracy"] >= HELD_OUT_FLOOR
    assert summary["variants"]["default"]["digits_flagged"] <= 0.02


@pytest.mark.slow
def test_shipped_model_flags_letters_and_doodles_of_held_out_writers(shipped):
    chars = pendata.non_digits(pendata.by_institution(pen("chars"), pendata.HOLDOUT))
    chars = pendata.stratified(chars, 3, key=lambda c: c["label"], seed=1)
    result = pen_eval.evaluate_non_digits(shipped, chars, shape_count=70, seed=0)
    assert result["chars"]["flagged"] >= 0.75
    assert result["shapes"]["flagged"] >= 0.8


def test_evaluation_report_and_contact_sheet(tmp_path, shipped, held_out_sample):
    sample = held_out_sample[:30]
    result = pen_eval.evaluate_digits(shipped, sample, variants=("thin", "small"), seed=0)
    # a wrong answer planted in the results must show up as a mistake on the sheet
    result["variants"]["thin"]["answers"][0] = (result["labels"][0] + 1) % 10
    summary = pen_eval.summarize(result)
    assert set(summary["variants"]) == {"thin", "small"}
    assert np.array(summary["confusion"]).sum() == 60
    assert summary["variants"]["thin"]["accuracy"] <= 29 / 30
    shown = pen_eval.contact_sheet(result, str(tmp_path / "sheet.png"))
    assert shown >= 1
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width == 8 * (2 * pen_eval.THUMB + 6)
    report = pen_eval.format_report(summary, {}, shipped.identity)
    assert "| thin |" in report and "true\\pred" in report


# --------------------------------------------------------------------------- is_digit through the API

def _post(client, image):
    response = client.post("/predict", data=encode(image), content_type="image/png")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


LETTER_A = [[(0.2, 0.9), (0.5, 0.1), (0.8, 0.9)], [(0.32, 0.58), (0.68, 0.58)]]
CROSSED_CIRCLE = [[(0.5 + 0.3 * math.cos(math.radians(a)), 0.5 + 0.3 * math.sin(math.radians(a)))
                   for a in range(0, 361, 15)], [(0.2, 0.5), (0.8, 0.5)], [(0.5, 0.2), (0.5, 0.8)]]
SCRIBBLE = [[(0.2, 0.3), (0.7, 0.25), (0.25, 0.45), (0.8, 0.4), (0.2, 0.6), (0.75, 0.55),
             (0.3, 0.75), (0.8, 0.7), (0.35, 0.35), (0.6, 0.8)]]
THREE = [[(0.3, 0.2), (0.5, 0.12), (0.68, 0.2), (0.68, 0.35), (0.5, 0.48), (0.7, 0.6), (0.7, 0.78),
          (0.5, 0.88), (0.3, 0.8)]]
DOT = [[(0.4, 0.6)]]
# A clean '>' in one stroke: the model before the third stage of `make train` read it as a 7
# at 99.85% (not-a-digit share 0.02).
CHEVRON = [[(0.3, 0.2), (0.7, 0.5), (0.3, 0.8)]]


@pytest.mark.parametrize("name, drawing", [("letter A", LETTER_A), ("crossed circle", CROSSED_CIRCLE),
                                           ("scribble", SCRIBBLE), ("dot", DOT), ("'>'", CHEVRON)])
def test_predict_says_a_non_digit_is_not_a_digit(client, name, drawing):
    answer = _post(client, draw_strokes(drawing))
    assert answer["is_digit"] is False, (name, answer["not_digit_score"])
    assert answer["digit"] in range(10) and len(answer["probabilities"]) == 10
    assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_predict_says_a_clean_three_is_a_digit(client):
    answer = _post(client, draw_strokes(THREE))
    assert answer["is_digit"] is True and answer["digit"] == 3
    assert answer["not_digit_score"] < 0.05


def test_every_success_carries_is_digit(client, digit_png):
    for digit in (0, 1, 7):
        response = client.post("/predict", data=digit_png(digit), content_type="image/png")
        answer = response.get_json()
        assert answer["is_digit"] is True and answer["digit"] == digit


def test_a_ten_output_model_never_refuses(tmp_path):
    """Older model files have no 11th output: every drawing counts as a digit."""
    model = load_model()
    if not model.rejects:
        pytest.skip("the shipped model is a ten-output model already")
    meta, params = modelfile.load(model.path)
    last = max(i for i, layer in enumerate(meta["architecture"]) if layer["type"] == "dense")
    meta["architecture"][last]["units"] = 10
    params[f"{last}.W"] = params[f"{last}.W"][:, :10]
    params[f"{last}.b"] = params[f"{last}.b"][:10]
    meta.pop("not_digit")
    modelfile.save(str(tmp_path / "ten.npz"), meta, params)
    ten = load_model(tmp_path / "ten.npz")
    blob = np.zeros((1, 28, 28), np.uint8)
    blob[0, 8:20, 8:20] = 255
    prediction = ten.predict(blob)
    assert not ten.rejects and prediction.is_digit.all() and prediction.not_digit.max() == 0
    assert prediction.probabilities.shape == (1, 10)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1, atol=1e-5)
    # the full model, same weights, does refuse the blob
    assert not model.predict(blob).is_digit[0]
