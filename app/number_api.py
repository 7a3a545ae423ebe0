"""POST /predict/number: read a whole number, left to right (see app/segment.py).

Takes the image exactly as /predict does (same three forms, limits and errors)
and answers the number with one entry per digit, each as /predict describes a
digit, plus its box in the uploaded image's pixels.
"""
import time

from flask import Blueprint, current_app, jsonify, request

from . import imaging, payload
from .api import UNSURE_BELOW, loaded_model, png_data_url
from .errors import ApiError, NoInk, NotReady
from .preprocess import BlankImageError
from .segment import MAX_DIGITS, TooManyDigits, read_number, upright_size

bp = Blueprint("numbers", __name__)


@bp.post("/predict/number")
def predict_number():
    started = time.perf_counter()
    model = loaded_model()
    if model is None:
        raise NotReady("The model is not loaded; the server cannot read numbers right now.")
    payload.refuse_declared_oversize(request)

    data = payload.image_bytes(request)
    image = imaging.decode_image(data, current_app.config["MAX_IMAGE_PIXELS"])
    try:
        size = upright_size(image)
        reading = read_number(image, model)
    except BlankImageError:
        raise NoInk("The image holds no ink (it is blank); draw or photograph a number.") from None
    except TooManyDigits as exc:
        raise ApiError(str(exc), 422) from None
    finally:
        image.close()
    return jsonify(describe(reading, size, model, (time.perf_counter() - started) * 1000))


def describe(reading, size, model, elapsed_ms):
    """The success JSON: the contract's keys plus what helps a person check each digit."""
    digits = []
    for d in reading.digits:
        digits.append({
            "digit": d.digit,
            "confidence": d.confidence,
            "probabilities": [float(p) for p in d.probabilities],
            "is_digit": d.is_digit,
            "box": d.box,
            "not_digit_score": round(d.not_digit, 4),
            "unsure": d.confidence < UNSURE_BELOW or not d.is_digit,
            "input_image": png_data_url(d.pixels),
        })
    return {
        "number": reading.number,
        "confidence": reading.confidence,
        "digits": digits,
        "unsure": any(d["unsure"] for d in digits),
        "image_size": list(size),
        "max_digits": MAX_DIGITS,
        "model": model.identity,
        "elapsed_ms": round(elapsed_ms, 2),
    }
