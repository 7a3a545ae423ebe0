"""What the README promises about /predict beyond the contract's core: rounded
probabilities that still sum to 1, OPTIONS refused as JSON, application/octet-stream
bodies read like an image type, and the "not a digit" answer of a rejecting model."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from app import create_app
from app.api import rounded
from app.preprocess import preprocess
from model import modelfile
from model.inference import DEFAULT_MODEL_PATH, load_model
from tests.conftest import encode


def rejecting_model(path, bias=50.0):
    """The shipped network whose 11th output (not a digit) always wins: added when
    the network has ten outputs, overridden (zero weights, a large bias) when it
    has one already.

    The ten digit outputs are untouched, so the closest digit stays the shipped
    model's answer; meta "not_digit" is what the trainer writes for such a model.
    """
    meta, params = modelfile.load(DEFAULT_MODEL_PATH)
    architecture = [dict(layer) for layer in meta["architecture"]]
    last = max(i for i, layer in enumerate(architecture) if layer["type"] == "dense")
    architecture[last]["units"] = 11
    weights, biases = params[f"{last}.W"][:, :10], params[f"{last}.b"][:10]
    params = dict(params)
    params[f"{last}.W"] = np.hstack([weights, np.zeros((weights.shape[0], 1), np.float32)])
    params[f"{last}.b"] = np.append(biases, np.float32(bias)).astype(np.float32)
    meta = {key: value for key, value in meta.items() if key not in ("weights_sha256",)}
    meta.update(architecture=architecture, name="mnist-cnn-rejects-all", not_digit={"threshold": 0.5})
    modelfile.save(path, meta, params)
    return str(path)


@pytest.fixture
def rejecting_client(tmp_path):
    return create_app({"TESTING": True, "MODEL_PATH": rejecting_model(tmp_path / "rejects.npz")}).test_client()


def decimals(value):
    text = repr(float(value))
    if "e-" in text:
        mantissa, exponent = text.split("e-")
        return int(exponent) + (len(mantissa.split(".")[1]) if "." in mantissa else 0)
    return len(text.split(".")[1]) if "." in text else 0


@pytest.mark.parametrize("digit, width", [(7, 20), (1, 4), (0, 40)])
def test_probabilities_have_six_decimals_and_sum_to_one(client, digit_png, digit, width):
    body = client.post("/predict", data=digit_png(digit, width=width), content_type="image/png").get_json()
    assert all(decimals(p) <= 6 for p in body["probabilities"]), body["probabilities"]
    assert abs(sum(body["probabilities"]) - 1.0) < 1e-9
    assert body["confidence"] == body["probabilities"][body["digit"]]
    assert body["top2"][0] == {"digit": body["digit"], "probability": body["confidence"]}
    # Rounded, but still the model's numbers.
    with Image.open(io.BytesIO(digit_png(digit, width=width))) as image:
        reference = load_model().predict_proba(preprocess(image)[None])[0]
    np.testing.assert_allclose(body["probabilities"], reference, atol=6e-6)


def test_rounding_keeps_the_sum_when_every_value_rounds_the_same_way():
    # Ten values that each round up by 4e-7: naive rounding would sum to 1.000004.
    probabilities = np.array([0.0999996] * 9 + [1 - 9 * 0.0999996])
    out = rounded(probabilities)
    assert abs(out.sum() - 1.0) < 1e-9
    assert np.all(np.abs(out - probabilities) <= 5e-6)


@pytest.mark.parametrize("path, allowed", [("/predict", "POST"), ("/healthz", "GET"), ("/", "GET")])
def test_options_is_refused_as_json_with_allow(client, path, allowed):
    response = client.open(path, method="OPTIONS")
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert allowed in response.headers["Allow"].split(", ")
    assert "OPTIONS" not in response.headers["Allow"]
    assert f"use {allowed}" in response.get_json()["error"]


def test_octet_stream_body_is_read_from_its_bytes(client, digit_image):
    for fmt in ("PNG", "JPEG", "WEBP"):
        data = encode(digit_image(7), fmt)
        response = client.post("/predict", data=data, content_type="application/octet-stream")
        assert response.status_code == 200, (fmt, response.get_data(as_text=True))
        assert response.get_json()["digit"] == 7


def test_octet_stream_of_another_format_is_refused_like_a_typed_one(client, digit_image):
    tiff = encode(digit_image(7), "TIFF")
    response = client.post("/predict", data=tiff, content_type="application/octet-stream")
    assert response.status_code == 415
    assert "PNG" in response.get_json()["error"]


def test_a_rejecting_model_says_not_a_digit_and_keeps_the_closest_digit(rejecting_client, client, digit_png):
    png = digit_png(7)
    normal = client.post("/predict", data=png, content_type="image/png").get_json()
    rejected = rejecting_client.post("/predict", data=png, content_type="image/png").get_json()
    assert normal["is_digit"] is True and normal["not_digit_score"] < 0.5
    assert rejected["is_digit"] is False and rejected["not_digit_score"] > 0.5
    assert rejected["digit"] == normal["digit"] == 7
    assert rejected["probabilities"] == pytest.approx(normal["probabilities"], abs=1e-5)
    assert json.dumps(rejected)  # plain JSON types
