"""Real pen-written characters (UNIPEN) and how a person would put them on the canvas.

`../shared/pendigits` (or $PENDIGITS_DIR) holds digits, letters and symbols written
on pen tablets at ten institutions, as stroke trajectories: exactly what a
person drawing on the page produces, minus the brush. Writers differ between
institutions far more than within one, so everything tuned on this data is
validated on institutions held out whole (see HOLDOUT below).
"""
import gzip
import json
import os

import numpy as np

from tools import strokes as canvas

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = {"digits": "pendigits_dev.json.gz", "chars": "penchars_dev.json.gz"}

# Institutions no training run or threshold ever sees: the numbers reported for
# "writers the model never saw" are measured on these. gmd is the one the MNIST
# model did worst on (89.9%); app is the largest after the training pool's.
HOLDOUT = ("gmd", "app")
# Institutions used only to pick the not-a-digit threshold (never trained on).
CALIBRATION = ("tos", "imp")

# Characters people write that a digit reader may fairly call a digit: O and o
# are 0, l I i j J | ! ' ` , . / \ ( ) [ ] { } are strokes a 1 is made of,
# S s are 5, Z z are 2, B & are 8, b G are 6, g q are 9, ? is a 2 or 7 with a
# dot, : ; are dots. They are neither trained as "not a digit" nor counted when
# measuring how many non-digits are flagged. Everything else is a non-digit.
DIGIT_SHAPED = frozenset("OoQDlIijJ|!'`,./\\()[]{}SsZzB&bGgq?:;")


class PenDataError(FileNotFoundError):
    """The pen data set is not where it was looked for."""


def pen_dir_from_env():
    """$PENDIGITS_DIR, else ../shared/pendigits beside the repository; None if absent."""
    candidate = os.environ.get("PENDIGITS_DIR") or os.path.join(REPO_ROOT, os.pardir, "shared", "pendigits")
    candidate = os.path.normpath(os.path.abspath(candidate))
    if all(os.path.isfile(os.path.join(candidate, name)) for name in FILES.values()):
        return candidate
    return None


def load(kind, data_dir=None):
    """The samples of one file ("digits" or "chars"): list of dicts with
    'id', 'inst', 'label' (int digit or one-character string) and 'strokes'."""
    data_dir = data_dir or pen_dir_from_env()
    if data_dir is None:
        raise PenDataError("pen data not found: set PENDIGITS_DIR or put it in ../shared/pendigits")
    with gzip.open(os.path.join(data_dir, FILES[kind]), "rt", encoding="utf-8") as fh:
        return json.load(fh)


def non_digits(chars):
    """The letters and symbols that do not look like any digit."""
    return [c for c in chars if c["label"] not in DIGIT_SHAPED]


def by_institution(samples, include=None, exclude=()):
    """Samples whose institution is in `include` (all when None) and not in `exclude`."""
    return [s for s in samples if (include is None or s["inst"] in include) and s["inst"] not in exclude]


def stratified(samples, per_group, key, seed=0):
    """Up to `per_group` samples of every `key(sample)` value, in a seeded random order."""
    rng = np.random.default_rng(seed)
    groups = {}
    for index in rng.permutation(len(samples)):
        groups.setdefault(key(samples[index]), []).append(samples[index])
    return [s for group in groups.values() for s in group[:per_group]]


# --------------------------------------------------------------------------- drawing

def to_segments(pen_strokes, linear=None):
    """Pen strokes (integer points, 0..1000 box, y down) -> (M, 2, 2) float32 segments.

    `linear` (2x2) slants or rotates the writing first, as another hand would.
    A one-point stroke (a dot) becomes a zero-length segment: a round brush mark.
    """
    paths = [np.asarray(s, dtype=np.float32) / 1000.0 for s in pen_strokes if len(s)]
    if linear is not None:
        paths = [p @ np.asarray(linear, dtype=np.float32).T for p in paths]
    return canvas.paths_to_segments(paths)


def draw(pen_strokes, variant, rng, brush=None, size=None, linear=None):
    """Draw pen strokes on the 280x280 canvas as a judged variant -> RGBA uint8.

    Brush, size and placement follow `tools.strokes.STYLES[variant]` (a round
    18-20 px brush at 55-85% of the canvas by default), overridable for
    training renders that go beyond the judged variants.
    """
    style = canvas.STYLES[variant]
    if size is not None:
        style = canvas.Style(brush=style.brush, size=(size, size), corner=style.corner, ink=style.ink)
    brush = float(brush if brush is not None else rng.uniform(*style.brush))
    segments = to_segments(pen_strokes, linear)
    placed = canvas.place_segments(segments, style, rng, brush)
    return canvas.render_segments(placed, brush, style.ink)
