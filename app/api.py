"""The JSON API: POST /predict classifies one image, GET /healthz says if we can."""
import base64
import struct
import time
import zlib

import numpy as np
from flask import Blueprint, current_app, g, jsonify, request

from . import imaging, metrics, payload
from .errors import NotReady
from .models import requested_model

bp = Blueprint("api", __name__)

# Below this top probability the answer is shown as a guess between two digits.
UNSURE_BELOW = 0.6
# Probabilities leave the API with six decimals: a millionth is far below any
# difference a person or a threshold acts on, and 4.6e-22 or 0.9999999999918394
# in every answer is noise that makes the JSON hard to read.
DECIMALS = 6


def loaded_model():
    """The model loaded at start-up, or None (healthz reports it, predict refuses)."""
    return current_app.extensions.get("digit_model")


@bp.get("/healthz")
def healthz():
    model = loaded_model()
    if model is None:
        response = jsonify(status="unavailable", error="The model is not loaded; check the server log.")
        response.status_code = 503
        return response
    return jsonify(status="ok", model=model.identity)


@bp.post("/predict")
def predict():
    started = time.perf_counter()
    model = requested_model()  # ?model=NAME, else the default
    if model is None:
        raise NotReady("The model is not loaded; the server cannot classify images right now.")
    payload.refuse_declared_oversize(request)

    data = payload.image_bytes(request)
    digit_image = imaging.digit_from_upload(data, current_app.config["MAX_IMAGE_PIXELS"],
                                            "The image holds no ink (it is blank); draw or photograph a digit.")
    decoded = time.perf_counter()

    prediction = model.predict(digit_image[None])
    finished = time.perf_counter()
    probabilities = prediction.probabilities[0].astype(np.float64)
    answer = describe(probabilities, bool(prediction.is_digit[0]), float(prediction.not_digit[0]),
                      digit_image, model,
                      preprocess_ms=(decoded - started) * 1000,
                      model_ms=(finished - decoded) * 1000)
    g.prediction = answer["digit"]  # for the request log line
    metrics.count_answer(answer["digit"], answer["unsure"], answer["is_digit"])
    return jsonify(answer)


def rounded(probabilities):
    """Probabilities to DECIMALS places that still sum to 1: the largest one takes
    up what rounding the others gained or lost (at most 5e-6 over ten values)."""
    probabilities = probabilities / probabilities.sum()
    out = np.round(probabilities, DECIMALS)
    top = int(np.argmax(probabilities))
    out[top] = round(1.0 - (out.sum() - out[top]), DECIMALS)
    return out


def describe(probabilities, is_digit, not_digit, digit_image, model, preprocess_ms, model_ms):
    """The success JSON: the contract's keys plus what helps a person read the answer.

    Ranked on the exact probabilities (rounding makes many of them tie at 0),
    reported rounded.
    """
    ranked = np.argsort(-probabilities, kind="stable")
    shown = rounded(probabilities)
    digit = int(ranked[0])
    confidence = float(shown[digit])
    exact = float(probabilities[digit] / probabilities.sum())  # "unsure" is decided before rounding
    return {
        "digit": digit,
        "confidence": confidence,
        "probabilities": [float(p) for p in shown],
        "is_digit": is_digit,
        "not_digit_score": round(not_digit, 4),
        "top2": [{"digit": int(d), "probability": float(shown[d])} for d in ranked[:2]],
        "unsure": exact < UNSURE_BELOW,
        "input_image": png_data_url(digit_image),
        "model": model.identity,
        "elapsed_ms": round(preprocess_ms + model_ms, 2),
        "timings_ms": {"decode_and_preprocess": round(preprocess_ms, 2), "model": round(model_ms, 2)},
    }


# zlib level for the 28x28 preview: 784 bytes of pixels compress the same at
# any level within a few dozen bytes, and level 1 is the quickest.
PREVIEW_ZLIB_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_data_url(pixels):
    """The 28x28 uint8 array the model saw, as a PNG data URL the page can show.

    Written directly (8-bit greyscale, one IDAT, no filtering): for 784 bytes
    the PNG is three small chunks, and Pillow's encoder machinery cost more
    than the rest of the answer's JSON (measured: 87 us against 15 us here).
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each scanline starts with filter type 0
    rows[:, 1:] = pixels
    png = b"".join((_PNG_SIGNATURE,
                    _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)),
                    _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PREVIEW_ZLIB_LEVEL)),
                    _png_chunk(b"IEND", b"")))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
