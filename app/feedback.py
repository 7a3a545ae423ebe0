"""Corrections: POST /feedback stores a drawing with its true label, GET
/feedback/summary counts them. A later training run learns from them
(python -m model.corrections export, then model.finetune).

What is kept is what training needs and nothing about the person: the 28x28
image the model saw, the label, the model's answer and its id, a timestamp;
the uploaded file only when FEEDBACK_KEEP_UPLOADS is on. No address, no
headers, no cookie.
"""
import logging
import re

import numpy as np
from flask import Blueprint, current_app, jsonify, request

from . import imaging, payload
from .errors import ApiError, BadInput, NotReady, error_response
from .store import Correction, StoreFull, StoreUnreachable

bp = Blueprint("feedback", __name__)
log = logging.getLogger("digitdraw")

STORE_KEY = "corrections_store"
_ONE_DIGIT = re.compile(r"^\s*[0-9]\s*$")
LABEL_HINT = ("send the true digit as 'label': a form field (-F label=7), a JSON key "
              "({\"image\": ..., \"label\": 7}) or ?label=7 beside a raw image body")


class SwitchedOff(ApiError):
    status = 404


# The database, not this request, is the problem: 503, retry later.
UNREACHABLE_MESSAGE = ("The corrections store cannot be reached right now{what}; predictions still work. "
                       "Retry in a moment.")


class Full(ApiError):
    # 507 Insufficient Storage (RFC 4918): the server cannot store the correction;
    # nothing is wrong with the request, and /predict is unaffected.
    status = 507


def correction_store():
    return current_app.extensions.get(STORE_KEY)


@bp.before_request
def only_when_switched_on():
    if not current_app.config["FEEDBACK"] or correction_store() is None:
        raise SwitchedOff("Corrections are switched off on this server (FEEDBACK=off); "
                          "POST /predict still classifies images.")


def parse_label(raw):
    """The label as an int 0-9, or BadInput naming what was wrong."""
    if raw is None:
        raise BadInput(f"The label is missing; {LABEL_HINT}.")
    if isinstance(raw, bool):
        raise BadInput(f"The label must be a digit 0-9, not {str(raw).lower()}; {LABEL_HINT}.")
    if isinstance(raw, int) and 0 <= raw <= 9:
        return raw
    if isinstance(raw, str) and _ONE_DIGIT.match(raw):
        return int(raw)
    shown = repr(raw) if isinstance(raw, str) else str(raw)
    raise BadInput(f"The label must be one digit 0-9, got {shown[:40]}; {LABEL_HINT}.")


@bp.post("/feedback")
def add_correction():
    model = current_app.extensions.get("digit_model")
    if model is None:
        raise NotReady("The model is not loaded; the server cannot take corrections right now.")
    payload.refuse_declared_oversize(request)
    data, fields = payload.image_and_fields(request, ("label",))
    label = parse_label(fields["label"])

    digit_image = imaging.digit_from_upload(data, current_app.config["MAX_IMAGE_PIXELS"],
                                            "The image holds no ink (it is blank); there is no drawing to correct.")
    prediction = model.predict(digit_image[None])
    probabilities = prediction.probabilities[0].astype(np.float64)
    predicted = int(np.argmax(probabilities))

    keep = current_app.config["FEEDBACK_KEEP_UPLOADS"]
    upload = data if keep and len(data) <= current_app.config["FEEDBACK_UPLOAD_MAX_BYTES"] else None
    correction = Correction(
        label=label, image=np.ascontiguousarray(digit_image, dtype=np.uint8).tobytes(),
        predicted=predicted, confidence=float(probabilities[predicted] / probabilities.sum()),
        is_digit=bool(prediction.is_digit[0]), model_name=str(model.meta.get("name", "model")),
        model_sha256=model.meta["weights_sha256"], upload=upload)
    cap = current_app.config["FEEDBACK_MAX"]
    try:
        ident = correction_store().add(correction, cap)
    except StoreFull:
        log.warning({"event": "corrections_full", "cap": cap})
        raise Full(f"This server already stores its maximum of {cap} corrections and takes no more; "
                   f"predictions still work. The operator can raise FEEDBACK_MAX.") from None
    body = {"id": ident, "label": label, "model_said": predicted}
    if keep:
        body["upload_kept"] = upload is not None
    response = jsonify(body)
    response.status_code = 201
    return response


@bp.get("/feedback/summary")
def summary():
    count, per_label = correction_store().summary()
    return jsonify(count=count, per_label=per_label)


@bp.errorhandler(StoreUnreachable)
def unreachable(exc):
    """The 503 for a database that stopped answering, on either route; the log says which and why."""
    log.warning({"event": "corrections_store_unreachable", "error": str(exc)})
    what = ": the correction was not stored" if request.method == "POST" else ""
    return error_response(UNREACHABLE_MESSAGE.format(what=what), 503)
