"""How well whole numbers are read: `python -m tools.number_eval` (`make eval-numbers`).

Numbers are composed from real pen digits (UNIPEN, ../shared/pendigits): 2 to 6
digits of one institution on a line, all at one height, drawn with a round
brush like the page's pad, at three spacings between neighbouring ink boxes:

* spaced:  gap 0.25-0.6 of the digit height;
* close:   gap 0.06-0.2;
* overlap: the boxes overlap by up to 0.15 of the height, the ink stays apart
  (the overlap is reduced until it does: a leaning 1, a 7's bar over the next).

Each is encoded as the PNG a canvas sends (black on white, or black ink on a
transparent canvas), decoded and read by `app.segment.read_number`, the API's
own path. Leading zeros are kept. The report gives exact-match rates by length
and spacing, how often the digit count is wrong and why (neighbours joined, a
digit split, a mark added or lost), per-digit accuracy beside what /predict
gives on the same digits alone, and writes a contact sheet of the failures.

    python -m tools.number_eval [--n 200] [--inst all,gmd,app] [--sheet PATH] [--seed 0]
                                [--spacings spaced,close,overlap,touching]
"""
import argparse
import gzip
import io
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from app.preprocess import preprocess
from app.segment import read_number
from tools import strokes

SPACINGS = {"spaced": (0.25, 0.6), "close": (0.06, 0.2), "overlap": (-0.15, 0.0)}
# Not a target (the numbers keep their ink apart): neighbours whose ink
# touches, to measure how well wide pieces are cut (--spacings touching).
EXTRA_SPACINGS = {"touching": (-0.12, -0.02)}
LENGTHS = (2, 3, 4, 5, 6)
INKS = ("black", "transparent")
PAD_HEIGHT = 280          # the number pad's height on the page
DIGIT_HEIGHT = (0.45, 0.7)  # of the pad height
BRUSH = (16, 20)          # px, as the page's 20 px marker
MAX_ASPECT = 1.3          # a flat sample is not stretched wider than this
TOUCH_LEVEL = 0.1         # coverage counted as ink when checking that neighbours stay apart


def default_pendigits():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("PENDIGITS", os.path.join(here, "..", "shared", "pendigits", "pendigits_dev.json.gz"))


def load_pendigits(path):
    """The samples of pendigits_dev.json.gz: dicts with inst, label and strokes."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@dataclass
class Composed:
    """One number made for the evaluation."""

    label: str
    spacing: str
    ink: str
    png: bytes
    boxes: list       # true ink boxes [left, top, right, bottom] in canvas px
    alone: list       # each digit rendered by itself (RGBA canvas), for /predict's view


def digit_paths(sample, height, brush):
    """A sample's strokes scaled to `height` of ink box (brush included), origin at 0."""
    paths = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in sample["strokes"]]
    points = np.vstack(paths)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = np.maximum(high - low, 1.0)
    scale = (height - brush) / max(extent[1], extent[0] / MAX_ASPECT)
    return [(p - low) * scale for p in paths], extent * scale


def compose(samples, spacing, ink, rng):
    """Digits side by side on one line with the spacing's gaps -> Composed."""
    height = rng.uniform(*DIGIT_HEIGHT) * PAD_HEIGHT
    brush = rng.uniform(*BRUSH)
    margin = 0.3 * height
    placed, x = [], margin
    for i, sample in enumerate(samples):
        paths, (w, h) = digit_paths(sample, height, brush)
        top = (PAD_HEIGHT - h) / 2 + rng.uniform(-0.05, 0.05) * height
        placed.append([paths, x, top, w, h])
        x += w + brush
        if i + 1 < len(samples):
            x += rng.uniform(*{**SPACINGS, **EXTRA_SPACINGS}[spacing]) * height
    size = (int(np.ceil(x + margin + (0.15 * height * len(samples) if spacing == "overlap" else 0))),
            PAD_HEIGHT)

    def coverage(item, shift=0.0):
        paths, left, top = item[0], item[1] + shift, item[2]
        origin = np.array([left + brush / 2, top + brush / 2])
        return strokes.render_segments(strokes.paths_to_segments([p + origin for p in paths]),
                                       brush, "coverage", size)

    layers = [coverage(item) for item in placed]
    if spacing == "overlap":
        # Pull digits apart (in whole pixels, room kept at the right) until no
        # two neighbours' ink touches.
        for i in range(1, len(placed)):
            while touching(layers[i - 1], layers[i]):
                for j in range(i, len(layers)):
                    layers[j] = np.pad(layers[j][:, :-1], ((0, 0), (1, 0)))
    total = np.max(np.stack(layers), axis=0)
    boxes = [ink_box(layer) for layer in layers]
    alone = [strokes.coverage_to_rgba(layer, ink) for layer in layers]
    label = "".join(str(s["label"]) for s in samples)
    return Composed(label, spacing, ink, strokes.png_bytes(strokes.coverage_to_rgba(total, ink)), boxes, alone)


def touching(a, b):
    """True when two coverage layers' ink meets (after a 1 px grow)."""
    grown = a > TOUCH_LEVEL
    grown[1:] |= grown[:-1].copy()
    grown[:-1] |= grown[1:].copy()
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return bool(np.any(grown & (b > TOUCH_LEVEL)))


def ink_box(coverage):
    rows = np.flatnonzero(coverage.max(axis=1) > TOUCH_LEVEL)
    cols = np.flatnonzero(coverage.max(axis=0) > TOUCH_LEVEL)
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def decode(png):
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def count_error(true_boxes, read_boxes):
    """Why the digit count is wrong: which read box covers which true digit."""
    def centre(box):
        return (box[0] + box[2]) / 2.0
    owners = [[j for j, r in enumerate(read_boxes) if r[0] <= centre(t) < r[2]] for t in true_boxes]
    covered = [sum(1 for t in true_boxes if r[0] <= centre(t) < r[2]) for r in read_boxes]
    if any(c >= 2 for c in covered):
        return "neighbours joined"
    if any(len(o) == 0 for o in owners):
        return "digit lost"
    if len(read_boxes) > len(true_boxes):
        holders = [sum(1 for r in read_boxes if t[0] <= centre(r) < t[2]) for t in true_boxes]
        return "digit split" if any(h >= 2 for h in holders) else "mark added"
    return "other"


def evaluate(model, pool, n, rng, spacings=tuple(SPACINGS)):
    """Read n composed numbers per spacing from `pool`; return per-number records."""
    by_label = [[s for s in pool if s["label"] == d] for d in range(10)]
    records = []
    for spacing in spacings:
        for k in range(n):
            length = LENGTHS[k % len(LENGTHS)]
            ink = INKS[(k // len(LENGTHS)) % len(INKS)]
            digits = rng.integers(0, 10, size=length)
            samples = [by_label[d][rng.integers(len(by_label[d]))] for d in digits]
            number = compose(samples, spacing, ink, rng)
            with decode(number.png) as image:
                reading = read_number(image, model)
            alone = np.stack([preprocess(Image.fromarray(rgba, "RGBA")) for rgba in number.alone])
            alone_digits = model.predict(alone).probabilities.argmax(axis=1)
            read_boxes = [d.box for d in reading.digits]
            records.append({
                "label": number.label, "read": reading.number, "spacing": spacing, "ink": ink,
                "length": length, "count_ok": len(reading.digits) == length,
                "why": None if len(reading.digits) == length else count_error(number.boxes, read_boxes),
                "alone": "".join(str(d) for d in alone_digits),
                "png": number.png, "boxes": read_boxes,
            })
    return records


def rate(records, test):
    return float(np.mean([test(r) for r in records])) if records else float("nan")


def report(name, records):
    """The tables for one pool of writers, as text."""
    lines = [f"## {name}: {len(records)} numbers"]
    head = ("| spacing | " + " | ".join(f"len {n}" for n in LENGTHS)
            + " | all | count wrong | digits in number | same digits alone |")
    lines += [head, "|" + "---|" * (len(LENGTHS) + 5)]
    for spacing in list(SPACINGS) + list(EXTRA_SPACINGS) + ["all"]:
        subset = [r for r in records if spacing in ("all", r["spacing"])]
        if not subset:
            continue
        cells = [rate([r for r in subset if r["length"] == n], lambda r: r["read"] == r["label"]) for n in LENGTHS]
        counted = [r for r in subset if r["count_ok"]]
        per_digit = np.mean([a == b for r in counted for a, b in zip(r["read"], r["label"])])
        alone = np.mean([a == b for r in subset for a, b in zip(r["alone"], r["label"])])
        lines.append(f"| {spacing} | " + " | ".join(f"{c:.1%}" for c in cells)
                     + f" | **{rate(subset, lambda r: r['read'] == r['label']):.1%}**"
                     + f" | {rate(subset, lambda r: not r['count_ok']):.1%} | {per_digit:.1%} | {alone:.1%} |")
    for ink in INKS:
        subset = [r for r in records if r["ink"] == ink]
        lines.append(f"exact on {ink}: {rate(subset, lambda r: r['read'] == r['label']):.1%}")
    reasons = {}
    for r in records:
        if r["why"]:
            key = (r["spacing"], r["why"])
            reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        lines.append("count wrong, why: " + "; ".join(f"{s} {w}: {c}" for (s, w), c in sorted(reasons.items())))
    return "\n".join(lines)


def contact_sheet(records, path, limit=60, height=70):
    """A grid of failed numbers, each with the read boxes in red and 'true -> read'."""
    failed = [r for r in records if r["read"] != r["label"]][:limit]
    if not failed:
        return 0
    tiles = []
    for r in failed:
        with decode(r["png"]) as image:
            canvas = Image.new("RGB", image.size, "white")
            canvas.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        pen = ImageDraw.Draw(canvas)
        for box in r["boxes"]:
            pen.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(220, 0, 0), width=3)
        scale = height / canvas.height
        tile = canvas.resize((max(1, round(canvas.width * scale)), height), Image.BILINEAR)
        labelled = Image.new("RGB", (max(tile.width, 160), height + 14), "white")
        labelled.paste(tile, (0, 14))
        ImageDraw.Draw(labelled).text((2, 1), f"{r['label']} -> {r['read']} ({r['spacing']})", fill=(0, 0, 0))
        tiles.append(labelled)
    columns = 4
    width = max(t.width for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (width + 6), rows * (height + 20)), (235, 235, 235))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (width + 6), (i // columns) * (height + 20)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return len(tiles)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="numbers per spacing and pool of writers")
    parser.add_argument("--inst", default="all,gmd,app",
                        help="comma list of pools: 'all', an institution, or 'not:gmd+app' (everyone else)")
    parser.add_argument("--data", default=None, help="pendigits_dev.json.gz (default: ../shared/pendigits)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--sheet", default="test-artifacts/number_eval_failures.png", help="contact sheet of failures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacings", default=",".join(SPACINGS),
                        help="comma list of " + ", ".join(list(SPACINGS) + list(EXTRA_SPACINGS)))
    args = parser.parse_args(argv)
    spacings = [name for name in args.spacings.split(",") if name]

    from model.inference import load_model
    path = args.data or default_pendigits()
    if not os.path.exists(path):
        parser.error(f"pen digits not found at {path}: pass --data or set PENDIGITS")
    samples = load_pendigits(path)
    model = load_model(args.model)
    print(f"model {model.identity['name']} ({model.identity['sha256']}); {args.n} numbers per spacing "
          f"and pool, lengths {LENGTHS[0]}-{LENGTHS[-1]}, inks {', '.join(INKS)}, seed {args.seed}")
    started = time.perf_counter()
    everything = []
    for p, pool_name in enumerate(name for name in args.inst.split(",") if name):
        if pool_name == "all":
            pool = samples
        elif pool_name.startswith("not:"):
            excluded = set(pool_name[4:].split("+"))
            pool = [s for s in samples if s["inst"] not in excluded]
        else:
            pool = [s for s in samples if s["inst"] == pool_name]
        if not pool:
            parser.error(f"no samples from {pool_name!r}")
        records = evaluate(model, pool, args.n, np.random.default_rng([args.seed, p]), spacings)
        everything += records
        print(report(pool_name, records))
    shown = contact_sheet(everything, args.sheet)
    print(f"({time.perf_counter() - started:.0f} s; contact sheet of {shown} failures: {args.sheet})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
