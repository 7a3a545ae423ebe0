"""Real pen-written digits (UNIPEN, ../shared/pendigits) drawn as canvas PNGs.

MNIST accuracy says how a network does on MNIST; these say how it does on what
people draw on the page: each sample's strokes are drawn with the page's round
brush on a 280x280 canvas (tools/strokes.py), encoded as the PNG a canvas sends
and run through the API's own decode and preprocessing.
"""
import gzip
import json
import os

import numpy as np

from tools import strokes
from tools.canvas_eval import through_api_path

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "..", "shared", "pendigits", "pendigits_dev.json.gz")
PEN_ENV = "PENDIGITS"  # overrides DEFAULT_PATH


def pendigits_path():
    """The dev file, or None when it is not on this machine."""
    path = os.environ.get(PEN_ENV) or os.path.normpath(DEFAULT_PATH)
    return path if os.path.isfile(path) else None


def load(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def stratified(samples, n, seed=0):
    """About n samples, the same number per label, picked reproducibly."""
    rng = np.random.default_rng(seed)
    labels = np.array([s["label"] for s in samples])
    per_label = max(1, n // 10)
    pick = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:per_label] for d in range(10)])
    return [samples[i] for i in np.sort(pick)]


def render(sample, rng, variant="default"):
    """One sample's strokes drawn like a person on the canvas -> RGBA (280, 280, 4)."""
    style = strokes.STYLES[variant]
    brush = rng.uniform(*style.brush)
    paths = [np.asarray(stroke, dtype=np.float64) for stroke in sample["strokes"] if len(stroke)]
    points = np.vstack(paths)
    low, high = points.min(axis=0), points.max(axis=0)
    scale, left, top = strokes._placement(*(high - low), style, rng, brush)
    placed = [(p - low) * scale + np.array([left, top]) for p in paths]
    return strokes.render_segments(strokes.paths_to_segments(placed), brush, style.ink)


def digits_and_labels(samples, seed=0):
    """(uint8 (N, 28, 28) digits as the model sees them, labels (N,))."""
    rng = np.random.default_rng(seed)
    digits = np.stack([through_api_path(render(s, rng)) for s in samples])
    return digits, np.array([s["label"] for s in samples], dtype=np.int64)
