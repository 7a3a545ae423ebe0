"""How well the whole pipeline reads canvas drawings: `python -m tools.canvas_eval`.

MNIST test digits are redrawn as people hand them in (see tools/strokes.py),
encoded as the PNG a browser canvas sends, decoded with PIL exactly as the API
does, preprocessed and classified. For every judged variant it prints the
accuracy against the true label and the agreement with the model's prediction
on the untouched 28x28 digit (agreement isolates what preprocessing costs).

    python -m tools.canvas_eval [--n 2000] [--model PATH] [--data DIR] [--seed 0]
"""
import argparse
import io
import sys
import time

import numpy as np
from PIL import Image

from app.preprocess import preprocess
from model.datasets import load_mnist, mnist_dir_from_env
from tools import strokes

FAMILIES = {
    "raster": strokes.redraw_raster,      # the MNIST pixels enlarged
    "strokes": strokes.redraw_skeleton,   # centre line re-traced with a round brush
}


def load_mnist_test(data_dir):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of the MNIST test set in data_dir."""
    data = load_mnist(data_dir=data_dir, splits=("test",))
    return data["test_images"], data["test_labels"]


def through_api_path(rgba):
    """Canvas RGBA -> PNG bytes -> PIL decode -> preprocess: the API's own path."""
    with Image.open(io.BytesIO(strokes.png_bytes(rgba))) as image:
        image.load()
        return preprocess(image)


def predict(model, digits, batch=500):
    return np.concatenate([model.predict_proba(digits[i:i + batch]).argmax(axis=1)
                           for i in range(0, len(digits), batch)])


def evaluate(model, images, labels, families=tuple(FAMILIES), variants=strokes.VARIANTS, seed=0):
    """{(family, variant): (accuracy, agreement)} plus the model's plain accuracy."""
    reference = predict(model, images)
    results = {}
    for family in families:
        redraw = FAMILIES[family]
        for variant in variants:
            rng = np.random.default_rng([seed, len(results)])
            digits = np.stack([through_api_path(redraw(img, variant, rng)) for img in images])
            predicted = predict(model, digits)
            results[family, variant] = (float(np.mean(predicted == labels)),
                                        float(np.mean(predicted == reference)))
    return float(np.mean(reference == labels)), results


def font_accuracy(model, per_digit=50, variants=strokes.VARIANTS, seed=0):
    """Accuracy on the stroke font (the shapes the browser test replays)."""
    out = {}
    for v, variant in enumerate(variants):
        rng = np.random.default_rng([seed, 99, v])
        labels = np.repeat(np.arange(10), per_digit)
        digits = np.stack([through_api_path(strokes.render_font_digit(d, variant, rng)) for d in labels])
        out[variant] = float(np.mean(predict(model, digits) == labels))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="MNIST test digits per variant")
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--data", default=None, help="MNIST directory (default: MNIST_DIR or ../shared/mnist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma list of " + ", ".join(FAMILIES))
    parser.add_argument("--font", type=int, default=50, help="stroke-font digits per class and variant (0: skip)")
    args = parser.parse_args(argv)

    from model.inference import load_model
    data_dir = args.data or mnist_dir_from_env()
    if data_dir is None:
        parser.error("MNIST not found: pass --data DIR or set MNIST_DIR")
    model = load_model(args.model)
    images, labels = load_mnist_test(data_dir)
    pick = np.random.default_rng(args.seed).choice(len(images), size=min(args.n, len(images)), replace=False)
    images, labels = images[pick], labels[pick]
    families = [f for f in args.families.split(",") if f]

    start = time.perf_counter()
    plain, results = evaluate(model, images, labels, families, seed=args.seed)
    font = font_accuracy(model, args.font, seed=args.seed) if args.font > 0 else {}
    elapsed = time.perf_counter() - start

    print(f"model {model.identity['name']} ({model.identity['sha256']}), {len(images)} MNIST test digits "
          f"per variant, seed {args.seed}; accuracy on the plain 28x28 digits: {plain:.2%}")
    header = f"| {'variant':<12}|" + "".join(f" {f + ' acc':>12} | {f + ' agree':>14} |" for f in families)
    if font:
        header += f" {'font acc':>9} |"
    print(header)
    print("|" + "-" * (len(header) - 2) + "|")
    for variant in strokes.VARIANTS:
        row = f"| {variant:<12}|"
        for family in families:
            acc, agree = results[family, variant]
            row += f" {acc:>12.2%} | {agree:>14.2%} |"
        if font:
            row += f" {font[variant]:>9.2%} |"
        print(row)
    print(f"({elapsed:.0f} s; acc = against the label, agree = same answer as on the original 28x28 digit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
