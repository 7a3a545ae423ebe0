"""The yardstick for serving overhead: a bare Flask route doing only
decode -> preprocess -> forward on a raw PNG body, with none of the app's
middleware (payload forms, error handlers, security headers, request log,
the extra response fields). bench_serve runs it beside the real app.
Its /decode only decodes the PNG: the floor any image route stands on, and
the yardstick issue 11 measures a lean /predict against.

    gunicorn 'bench.bare_app:create_bare_app()'
"""
import numpy as np
from flask import Flask, jsonify, request

from app.config import DEFAULTS
from app.imaging import decode_image
from app.preprocess import preprocess
from model.inference import load_model


def create_bare_app():
    bare = Flask(__name__)
    model = load_model()
    max_pixels = DEFAULTS["MAX_IMAGE_PIXELS"]

    @bare.post("/predict")
    def predict():
        image = decode_image(request.get_data(), max_pixels)
        probabilities = model.predict_proba(preprocess(image)[None])[0]
        return jsonify(digit=int(np.argmax(probabilities)), probabilities=[float(p) for p in probabilities])

    @bare.post("/decode")
    def decode():
        """The issue's yardstick: only decode the PNG (what any image route must do)."""
        image = decode_image(request.get_data(), max_pixels)
        width, height = image.size
        image.close()
        return jsonify(width=width, height=height)

    @bare.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return bare
