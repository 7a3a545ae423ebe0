"""`GET /openapi.json`: the HTTP API described as an OpenAPI 3.1 document.

Built from a Python dict so the shared pieces (the three image forms, the
error body, the error statuses) are written once. It follows the contract in
CONTRACT.md, including routes other modules serve (`/predict/number`,
`/feedback`, `/feedback/summary`, `/models`): a client generated from it sees
the whole API. tests/test_openapi.py validates it with openapi-spec-validator,
and tests/test_api.py checks every answer it receives against it.
"""
import json

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

JSON = "application/json"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description, **extra):
    return {"description": description, "content": {JSON: {"schema": schema, **extra}}}


def _error(description):
    return _json(_ref("Error"), description)


# What every route that reads an image may refuse, and why.
IMAGE_ERRORS = {
    "400": _error("Missing or undecodable image, bad JSON or base64 (or a bad field, such as the label)."),
    "413": _error("Body or image dimensions over the limit (checked before decoding)."),
    "415": _error("Unsupported content type or image format."),
    "422": _error("The image holds no ink (blank)."),
    "405": _error("Wrong method; the Allow header names the right one."),
}


def _image_body(extra_json=None, extra_form=None, description="The image, in any of three forms."):
    """The three forms of the contract: multipart field `image`, a raw image body, JSON."""
    form = {"type": "object", "required": ["image"],
            "properties": {"image": {"type": "string", "contentMediaType": "application/octet-stream",
                                     "description": "The image file (PNG, JPEG, GIF, BMP or WEBP), "
                                                    "or a text field holding a data URL."},
                           **(extra_form or {})}}
    as_json = {"type": "object", "required": ["image"],
               "properties": {"image": {"type": "string",
                                        "description": "A data URL (data:image/png;base64,...) or bare base64."},
                              **(extra_json or {})}}
    content = {"multipart/form-data": {"schema": form}}
    for mime in IMAGE_TYPES:
        content[mime] = {"schema": {"type": "string", "contentMediaType": mime}}
    content[JSON] = {"schema": as_json}
    return {"required": True, "description": description, "content": content}


PROBABILITIES = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                 "minItems": 10, "maxItems": 10,
                 "description": "Ten probabilities, index = digit, summing to 1."}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string", "minLength": 1,
                                       "description": "One sentence a person can act on."}}},
    "ModelIdentity": {"type": "object", "required": ["name", "sha256"],
                      "properties": {"name": {"type": "string"},
                                     "sha256": {"type": "string", "description": "First 12 hex digits of the "
                                                "weights' SHA-256."},
                                     "test_accuracy": {"type": ["number", "null"]}}},
    "Prediction": {
        "type": "object", "required": ["digit", "confidence", "probabilities", "is_digit"],
        "properties": {
            "digit": {"type": "integer", "minimum": 0, "maximum": 9},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "The probability of `digit`."},
            "probabilities": PROBABILITIES,
            "is_digit": {"type": "boolean", "description": "false when the drawing does not look like any "
                                                            "digit; `digit` is then still the closest one."},
            "not_digit_score": {"type": "number", "minimum": 0, "maximum": 1},
            "top2": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "required": ["digit", "probability"],
                "properties": {"digit": {"type": "integer", "minimum": 0, "maximum": 9},
                               "probability": {"type": "number", "minimum": 0, "maximum": 1}}}},
            "unsure": {"type": "boolean", "description": "The top probability is below 0.6."},
            "input_image": {"type": "string", "pattern": "^data:image/png;base64,",
                            "description": "The 28x28 image the model saw, as a PNG data URL."},
            "model": _ref("ModelIdentity"),
            "elapsed_ms": {"type": "number", "minimum": 0},
            "timings_ms": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        },
        "description": "Extra keys may be added; clients must ignore those they do not know.",
    },
    "NumberDigit": {
        "type": "object", "required": ["digit", "confidence", "probabilities", "is_digit", "box"],
        "properties": {
            "digit": {"type": "integer", "minimum": 0, "maximum": 9},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "probabilities": PROBABILITIES,
            "is_digit": {"type": "boolean"},
            "box": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4,
                    "description": "Ink bounding box in the uploaded image's pixels: [left, top, right, bottom], "
                                   "right and bottom exclusive."},
        },
    },
    "NumberReading": {
        "type": "object", "required": ["number", "confidence", "digits"],
        "properties": {
            "number": {"type": "string", "pattern": "^[0-9]+$",
                       "description": "The digits left to right, leading zeros kept."},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "digits": {"type": "array", "minItems": 1, "items": _ref("NumberDigit"),
                       "description": "One entry per digit, in the order of `number`."},
        },
    },
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string", "enum": ["ok"]}, "model": _ref("ModelIdentity")}},
    "Unavailable": {"type": "object", "required": ["status", "error"],
                    "properties": {"status": {"type": "string"}, "error": {"type": "string"}}},
    "CorrectionStored": {"type": "object", "required": ["id", "label", "model_said"],
                         "properties": {"id": {"type": "string", "description": "Opaque id."},
                                        "label": {"type": "integer", "minimum": 0, "maximum": 9},
                                        "model_said": {"type": "integer", "minimum": 0, "maximum": 9,
                                                       "description": "The digit the model answered."},
                                        "upload_kept": {"type": "boolean",
                                                        "description": "Whether the uploaded file was stored "
                                                                       "too (when asked for with keep)."}}},
    "CorrectionSummary": {
        "type": "object", "required": ["count", "per_label"],
        "properties": {"count": {"type": "integer", "minimum": 0},
                       "per_label": {"type": "object", "propertyNames": {"pattern": "^[0-9]$"},
                                     "additionalProperties": {"type": "integer", "minimum": 0}}}},
    "ModelList": {
        "type": "object", "required": ["default", "models"],
        "properties": {
            "default": {"type": "string", "description": "The model /predict uses without ?model=."},
            "models": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "default", "architecture", "parameters", "sha256"],
                "properties": {"name": {"type": "string", "description": "What ?model= takes."},
                               "default": {"type": "boolean"},
                               "title": {"type": "string", "description": "The name stored in the model file."},
                               "architecture": {"type": "string",
                                                "description": "Short summary, e.g. 784-128(relu)-64(relu)-10."},
                               "parameters": {"type": "integer", "minimum": 0},
                               "mnist_accuracy": {"type": ["number", "null"], "description": "MNIST test accuracy."},
                               "sha256": {"type": "string", "description": "SHA-256 of the weights."}}}}},
        "description": "Extra keys may be added.",
    },
}

LABEL = {"type": "integer", "minimum": 0, "maximum": 9, "description": "The true digit."}


def document():
    """The OpenAPI 3.1 document as a dict."""
    predict_ok = _json(_ref("Prediction"), "The digit, its confidence and all ten probabilities.")
    return {
        "openapi": "3.1.0",
        "info": {"title": "digitdraw", "version": "1.0.0",
                 "description": "Handwritten-digit recognizer: draw or upload a digit (or a number), get it back "
                                "as text. Errors are always JSON {\"error\": \"...\"}, never an HTML page.",
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "paths": {
            "/predict": {"post": {
                "operationId": "predictDigit",
                "summary": "Classify one drawn or photographed digit.",
                "parameters": [{"name": "model", "in": "query", "required": False, "schema": {"type": "string"},
                                "description": "Name of a loaded model (GET /models); the default model "
                                               "otherwise. An unknown name is a 400 listing the names."}],
                "requestBody": _image_body(),
                "responses": {"200": predict_ok, **IMAGE_ERRORS,
                              "503": _error("The model is not loaded.")}}},
            "/predict/number": {"post": {
                "operationId": "predictNumber",
                "summary": "Read a whole number written left to right (digits side by side, ink apart).",
                "requestBody": _image_body(),
                "responses": {"200": _json(_ref("NumberReading"), "The number and each digit with its box."),
                              **IMAGE_ERRORS,
                              "422": _error("The image holds no ink, or more digits than the documented maximum."),
                              "503": _error("The model is not loaded.")}}},
            "/feedback": {"post": {
                "operationId": "storeCorrection",
                "summary": "Store a drawing with its true label, for a later training run.",
                "parameters": [{"name": "label", "in": "query", "required": False, "schema": LABEL,
                                "description": "The label, when the body is a raw image."}],
                "requestBody": _image_body(extra_json={"label": LABEL},
                                           extra_form={"label": {"type": "string", "pattern": "^[0-9]$"}},
                                           description="The image in any of the three forms, and the label "
                                                       "(multipart field, JSON key or query parameter)."),
                "responses": {"201": _json(_ref("CorrectionStored"), "Stored."),
                              **IMAGE_ERRORS,
                              "400": _error("The label is missing or not an integer 0-9, or the image is bad."),
                              "404": _error("Corrections are switched off on this server."),
                              "503": _error("The model is not loaded, or the store cannot be reached."),
                              "507": _error("The server already stores its maximum of corrections.")}}},
            "/feedback/summary": {"get": {
                "operationId": "correctionSummary",
                "summary": "How many corrections are stored, per label (no images).",
                "responses": {"200": _json(_ref("CorrectionSummary"), "Counts."),
                              "404": _error("Corrections are switched off on this server."),
                              "405": IMAGE_ERRORS["405"],
                              "503": _error("The store cannot be reached.")}}},
            "/models": {"get": {
                "operationId": "listModels",
                "summary": "The models loaded at start-up.",
                "responses": {"200": _json(_ref("ModelList"), "Loaded models."),
                              "405": IMAGE_ERRORS["405"]}}},
            "/healthz": {"get": {
                "operationId": "health",
                "summary": "Liveness and readiness: 200 once the model is loaded.",
                "responses": {"200": _json(_ref("Health"), "Ready."),
                              "503": _json(_ref("Unavailable"), "The model is not loaded."),
                              "405": IMAGE_ERRORS["405"]}}},
            "/metrics": {"get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics in the text exposition format, summed over all workers.",
                "responses": {"200": {"description": "Requests by route and status, latency histograms, "
                                                     "answers by digit, unsure and not-a-digit answers, "
                                                     "corrections stored, the model's id.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "405": IMAGE_ERRORS["405"]}}},
            "/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1 document.",
                                      "content": {JSON: {"schema": {"type": "object", "required": ["openapi"]}}}},
                              "405": IMAGE_ERRORS["405"]}}},
            "/": {"get": {
                "operationId": "page",
                "summary": "The drawing page.",
                "responses": {"200": {"description": "HTML page.", "content": {"text/html": {
                    "schema": {"type": "string"}}}}}}},
            "/static/{filename}": {"get": {
                "operationId": "asset",
                "summary": "The page's scripts and styles.",
                "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The file."},
                              "304": {"description": "Not modified."},
                              "404": _error("No such file.")}}},
        },
        "components": {"schemas": SCHEMAS},
    }


_BODY = json.dumps(document(), indent=1).encode()


@bp.get("/openapi.json")
def openapi():
    return Response(_BODY, content_type=JSON, headers={"Cache-Control": "public, max-age=300"})
