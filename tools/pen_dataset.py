"""Training images in the pen domain: `python -m tools.pen_dataset --out runs/pen_train.npz`.

MNIST alone scores 99.5% on MNIST and about 95% on real people's pen digits:
people write shapes MNIST lacks (a 1 with a flag, open and slanted 0s) and draw
with a round brush of one width. This writes what closes that gap, every image
taken through the app's own preprocessing (`app.preprocess`) so the network
trains on exactly what it will be shown:

* real pen digits (UNIPEN) of the training institutions, each drawn several
  times with another brush, size, place, ink and a slant or rotation;
* the same writers' letters and symbols that look like no digit, and made-up
  doodles (`tools.shapes`), labelled 10, "not a digit";
* MNIST digits thinned to their centre line and traced again with a round
  brush (what a pen on a screen makes of the same shapes).

Every image has its own seed (derived from --seed and its index), so the file
is the same whatever --jobs is. Institutions in `pendata.HOLDOUT` and
`pendata.CALIBRATION` are left out unless asked for.
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from app.preprocess import BlankImageError, preprocess
from tools import handstyles, pendata, shapes
from tools import strokes as canvas

NOT_A_DIGIT = 10
JOB_KINDS = ("pen", "shape", "mnist", "judged", "styled")

# Writing varies between people more than the judged variants do: slants up to
# 0.35 (italic hands measured on the pen data reach about that), rotation of a
# tilted page, narrow and wide hands.
ROTATE_DEG = 10.0
SHEAR = 0.35
ASPECT = (0.8, 1.25)
# Brush diameters from a fine stylus to a fat finger on a 280 px canvas; digit
# heights from a small corner scribble to nearly the whole pad.
BRUSH = (5.0, 32.0)
SIZE = (0.2, 0.9)


def random_hand(rng):
    """A 2x2 map (rotation @ shear @ aspect) applied to the writing: another hand."""
    angle = np.deg2rad(rng.uniform(-ROTATE_DEG, ROTATE_DEG))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-SHEAR, SHEAR)], [0.0, 1.0]])
    aspect = np.diag([rng.uniform(*ASPECT), 1.0])
    return rotation @ shear @ aspect


def pick_variant(rng):
    """The judged canvas variant a job is drawn in: the first draw of its own rng."""
    return canvas.VARIANTS[int(rng.integers(len(canvas.VARIANTS)))]


def job_variant(job):
    """The variant `render(job)` draws in, known without drawing (calibration per variant)."""
    return pick_variant(np.random.default_rng(job[2]))


def render(job):
    """One job -> uint8 (28, 28) as the model sees it, or None when nothing is left."""
    kind, payload, seed = job
    rng = np.random.default_rng(seed)
    variant = pick_variant(rng)
    if kind in ("pen", "styled"):
        if kind == "styled":  # (strokes, digit): a crossed 0, a flagged 1 (tools/handstyles.py)
            payload = handstyles.STYLES[payload[1]](payload[0], rng)
        rgba = pendata.draw(payload, variant, rng, brush=rng.uniform(*BRUSH), size=rng.uniform(*SIZE),
                            linear=random_hand(rng))
    elif kind == "judged":  # exactly as the evaluation draws: a judged variant, nothing more
        rgba = pendata.draw(payload, variant, rng)
    elif kind == "shape":
        pen_strokes, size = shapes.ALL_GENERATORS[payload](rng)
        rgba = pendata.draw(pen_strokes, variant, rng, brush=rng.uniform(*BRUSH), size=size)
    elif kind == "mnist":
        rgba = canvas.redraw_skeleton(np.asarray(payload, dtype=np.uint8), variant, rng)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    try:
        return preprocess(Image.fromarray(rgba, "RGBA"))
    except BlankImageError:
        return None


def plan(args, digits, chars, mnist):
    """(jobs, labels, sources, institutions) in a fixed order; seeds follow the order."""
    jobs, labels, sources, insts = [], [], [], []

    def add(kind, payload, label, source, inst):
        seed = (args.seed, JOB_KINDS.index(kind), len(jobs))
        jobs.append((kind, payload, seed))
        labels.append(label)
        sources.append(source)
        insts.append(inst)

    kind = "judged" if args.judged else "pen"
    for sample in digits:
        for _ in range(args.renders):
            add(kind, sample["strokes"], int(sample["label"]), "pen-digit", sample["inst"])
    ones = 0
    for sample in digits:
        if sample["label"] == 1 and len(sample["strokes"]) == 1:
            ones += 1
            if ones % 2:
                continue  # every other one-stroke 1: as many flagged 1s as crossed 0s
        if sample["label"] in handstyles.STYLES:
            for _ in range(args.styled):
                add("styled", (sample["strokes"], sample["label"]), int(sample["label"]),
                    f"pen-styled:{sample['label']}", sample["inst"])
    for sample in chars:
        for _ in range(args.char_renders):
            add(kind, sample["strokes"], NOT_A_DIGIT, "pen-char:" + sample["label"], sample["inst"])
    names = args.shape_kinds or sorted(shapes.GENERATORS)
    for i in range(args.shapes):
        add("shape", names[i % len(names)], NOT_A_DIGIT, "shape:" + names[i % len(names)], "-")
    if mnist is not None:
        images, mnist_labels = mnist
        for image, label in zip(images, mnist_labels):
            add("mnist", image, int(label), "mnist-restroke", "-")
    return jobs, labels, sources, insts


def select(args):
    digits, chars = pendata.load("digits", args.pen_dir), pendata.load("chars", args.pen_dir)
    include = args.institutions.split(",") if args.institutions else None
    exclude = () if include else tuple(pendata.HOLDOUT) + tuple(pendata.CALIBRATION)
    digits = pendata.by_institution(digits, include, exclude)
    chars = pendata.non_digits(pendata.by_institution(chars, include, exclude))
    if args.max_chars and len(chars) > args.max_chars:
        pick = np.random.default_rng([args.seed, 7]).choice(len(chars), args.max_chars, replace=False)
        chars = [chars[i] for i in sorted(pick)]
    mnist = None
    if args.mnist_restroke:
        from model.datasets import load_mnist, mnist_dir_from_env
        data = load_mnist(data_dir=args.mnist_dir or mnist_dir_from_env(), splits=("train",))
        pick = np.random.default_rng([args.seed, 8]).choice(len(data["train_images"]), args.mnist_restroke,
                                                            replace=False)
        pick.sort()
        mnist = (data["train_images"][pick], data["train_labels"][pick])
    return digits, chars, mnist


def build(args):
    digits, chars, mnist = select(args)
    jobs, labels, sources, insts = plan(args, digits, chars, mnist)
    started = time.perf_counter()
    images = []
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for image in tqdm(pool.imap(render, jobs, chunksize=32), total=len(jobs), desc="rendering",
                          disable=None, unit="img"):
            images.append(image)
    keep = [i for i, image in enumerate(images) if image is not None]
    stacked = np.stack([images[i] for i in keep]).astype(np.uint8)
    labels = np.array([labels[i] for i in keep], dtype=np.uint8)
    sources = np.array([sources[i] for i in keep])
    insts = np.array([insts[i] for i in keep])
    variants = np.array([job_variant(jobs[i]) for i in keep])
    meta = {
        "what": "pen-domain training images, MNIST-normalised by app.preprocess",
        "seed": args.seed, "renders": args.renders, "styled": args.styled, "char_renders": args.char_renders,
        "shapes": args.shapes, "mnist_restroke": args.mnist_restroke, "judged": args.judged,
        "institutions": sorted(set(insts.tolist()) - {"-"}),
        "counts": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True))},
        "dropped_blank": len(jobs) - len(keep),
        "seconds": round(time.perf_counter() - started, 1),
        "images_sha256": hashlib.sha256(stacked.tobytes()).hexdigest(),
    }
    return stacked, labels, sources, insts, meta, variants


def save(path, images, labels, sources, insts, meta, variants=None):
    """An .npz of plain arrays (no objects, so it loads with allow_pickle=False);
    `variants` names the canvas variant of every image (the calibration sets
    use it to hold each variant, not just their mix, to the refusal rate)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, images=images, labels=labels, sources=sources.astype("U"),
                        institutions=insts.astype("U"), meta=np.array(json.dumps(meta, sort_keys=True)),
                        **({} if variants is None else {"variants": np.asarray(variants).astype("U")}))
    os.replace(tmp, path)


def load(path):
    """(images uint8 (N, 28, 28), labels uint8 (N,), sources, institutions, meta dict)."""
    with np.load(path, allow_pickle=False) as data:
        return (data["images"], data["labels"], data["sources"], data["institutions"],
                json.loads(str(data["meta"])))


def shape_kinds(text):
    """--shape-kinds "a,b" -> ("a", "b"), every name a doodle kind: refused while parsing,
    not as a KeyError in a rendering process."""
    kinds = tuple(kind for kind in text.split(",") if kind)
    unknown = [kind for kind in kinds if kind not in shapes.ALL_GENERATORS]
    if unknown:
        raise argparse.ArgumentTypeError(f"no doodle kind {', '.join(unknown)}; "
                                         f"the kinds are {', '.join(sorted(shapes.ALL_GENERATORS))}")
    return kinds


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.pen_dataset", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--institutions", default="",
                   help="comma list of institutions to take (default: all but the held-out and calibration ones)")
    p.add_argument("--renders", type=int, default=3, help="drawings of every pen digit")
    p.add_argument("--styled", type=int, default=0,
                   help="drawings of every pen 0 with a slash and every one-stroke 1 with a flag (tools/handstyles.py)")
    p.add_argument("--char-renders", type=int, default=1, help="drawings of every non-digit letter or symbol")
    p.add_argument("--max-chars", type=int, default=12000, help="at most this many letters and symbols (0: all)")
    p.add_argument("--shapes", type=int, default=4000, help="made-up doodles (dots, ticks, lines, scribbles...)")
    p.add_argument("--shape-kinds", type=shape_kinds, default=(),
                   help="comma list of doodle kinds to draw in turn (default: every one of shapes.GENERATORS; "
                        "shapes.EXTRA_GENERATORS only when named)")
    p.add_argument("--mnist-restroke", type=int, default=10000, help="MNIST training digits traced again with a pen")
    p.add_argument("--judged", action="store_true",
                   help="draw pen samples exactly as the judged variants (for calibration sets), no extra slant")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="rendering processes")
    p.add_argument("--pen-dir", default=None, help="pen data directory (default: PENDIGITS_DIR or ../shared/pendigits)")
    p.add_argument("--mnist-dir", default=None, help="MNIST directory (default: MNIST_DIR or ../shared/mnist)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    images, labels, sources, insts, meta, variants = build(args)
    save(args.out, images, labels, sources, insts, meta, variants)
    print(f"wrote {args.out}: {len(images)} images in {meta['seconds']} s; per label {meta['counts']}; "
          f"institutions {','.join(meta['institutions'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
