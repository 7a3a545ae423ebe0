"""How well the product reads real people's pen writing: `python -m tools.pen_eval` (`make eval-pen`).

Real pen digits (UNIPEN, `tools.pendata`) of institutions the shipped model never
trained on are drawn on the 280x280 canvas in the seven judged variants,
encoded as the PNG a browser sends, decoded and preprocessed exactly as
`/predict` does, and classified. It prints accuracy per variant, per
institution and per digit, the confusion matrix, how often real digits are
called "not a digit", how often letters, symbols and doodles are, and writes
a contact sheet of the mistakes (PNG) for a person to look at.

    python -m tools.pen_eval [--institutions gmd,app] [--per-institution 0] [--chars 2000]
                             [--model PATH] [--sheet test-artifacts/pen_mistakes.png] [--json out.json]
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

from model.metrics import confusion_matrix, format_confusion
from tools import pendata, shapes
from tools import strokes as canvas
from tools.canvas_eval import through_api_path

THUMB = 84  # contact-sheet tile: the canvas as drawn, shrunk; the 28x28 input beside it


def draw_job(job):
    """(pen strokes or shape name, variant, seed) -> (canvas RGBA thumbnail, 28x28 model input)."""
    what, variant, seed = job
    rng = np.random.default_rng(seed)
    if isinstance(what, str):
        pen_strokes, size = shapes.GENERATORS[what](rng)
        rgba = pendata.draw(pen_strokes, variant, rng, size=size)
    else:
        rgba = pendata.draw(what, variant, rng)
    thumb = np.asarray(Image.fromarray(rgba, "RGBA").resize((THUMB, THUMB), Image.BOX))
    return thumb, through_api_path(rgba)


def draw_all(items, variant, seed, jobs):
    """Draw every item in one variant; seeds depend on (seed, variant, index) only."""
    v = canvas.VARIANTS.index(variant)
    work = [(item, variant, (seed, v, i)) for i, item in enumerate(items)]
    if jobs > 1 and len(work) > 64:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            done = pool.map(draw_job, work, chunksize=16)
    else:
        done = [draw_job(job) for job in work]
    return np.stack([t for t, _ in done]), np.stack([d for _, d in done])


def classify(model, digits, batch=500):
    """(answers (N,), is_digit (N,)) from the model's own decision."""
    answers, accepted = [], []
    for s in range(0, len(digits), batch):
        prediction = model.predict(digits[s:s + batch])
        answers.append(prediction.probabilities.argmax(axis=1))
        accepted.append(prediction.is_digit)
    return np.concatenate(answers), np.concatenate(accepted)


def evaluate_digits(model, samples, variants=canvas.VARIANTS, seed=0, jobs=1):
    """Per variant: answers and is_digit for every sample, plus what to draw mistakes from."""
    labels = np.array([s["label"] for s in samples])
    insts = np.array([s["inst"] for s in samples])
    out = {"labels": labels, "institutions": insts, "variants": {}}
    for variant in variants:
        thumbs, digits = draw_all([s["strokes"] for s in samples], variant, seed, jobs)
        answers, is_digit = classify(model, digits)
        out["variants"][variant] = {"answers": answers, "is_digit": is_digit, "thumbs": thumbs, "inputs": digits}
    return out


def evaluate_non_digits(model, chars, shape_count, seed=0, jobs=1, variant="default"):
    """Share of letters/symbols and of made-up doodles that the model flags."""
    result = {}
    if chars:
        _, digits = draw_all([c["strokes"] for c in chars], variant, seed + 1, jobs)
        _, is_digit = classify(model, digits)
        result["chars"] = {"count": len(chars), "flagged": float(np.mean(~is_digit))}
        per = {}
        for c, ok in zip(chars, is_digit):
            per.setdefault(c["label"], []).append(not ok)
        result["chars"]["per_char"] = {k: float(np.mean(v)) for k, v in sorted(per.items())}
    if shape_count:
        names = sorted(shapes.GENERATORS)
        items = [names[i % len(names)] for i in range(shape_count)]
        _, digits = draw_all(items, variant, seed + 2, jobs)
        _, is_digit = classify(model, digits)
        result["shapes"] = {"count": shape_count, "flagged": float(np.mean(~is_digit)),
                            "per_shape": {n: float(np.mean([not ok for it, ok in zip(items, is_digit) if it == n]))
                                          for n in names}}
    return result


def summarize(result):
    """Plain numbers (JSON-ready) from `evaluate_digits`."""
    labels, insts = result["labels"], result["institutions"]
    summary = {"count": int(len(labels)), "variants": {}, "institutions": {}, "per_digit": {}}
    pooled_true, pooled_pred = [], []
    for variant, r in result["variants"].items():
        right = r["answers"] == labels
        summary["variants"][variant] = {"accuracy": float(right.mean()),
                                        "digits_flagged": float(np.mean(~r["is_digit"]))}
        pooled_true.append(labels)
        pooled_pred.append(r["answers"])
        for inst in sorted(set(insts)):
            entry = summary["institutions"].setdefault(inst, {"count": int(np.sum(insts == inst))})
            entry[variant] = float(right[insts == inst].mean())
    true, pred = np.concatenate(pooled_true), np.concatenate(pooled_pred)
    for d in range(10):
        mask = true == d
        summary["per_digit"][str(d)] = float(np.mean(pred[mask] == d)) if mask.any() else None
    summary["confusion"] = confusion_matrix(true, pred).tolist()
    summary["mean_accuracy"] = float(np.mean([v["accuracy"] for v in summary["variants"].values()]))
    return summary


def contact_sheet(result, path, limit=120, columns=8):
    """PNG of mistakes: each tile the canvas as drawn and the 28x28 the model saw,
    captioned true -> answer (a trailing '?' when it was called "not a digit"),
    variant and institution. Digits read right but refused are mistakes too."""
    labels, insts = result["labels"], result["institutions"]
    tiles = []
    for variant, r in result["variants"].items():
        for i in np.flatnonzero((r["answers"] != labels) | ~r["is_digit"]):
            refused = "" if r["is_digit"][i] else "?"
            tiles.append((r["thumbs"][i], r["inputs"][i],
                          f"{labels[i]}->{r['answers'][i]}{refused} {variant[:6]} {insts[i]}"))
    tiles = tiles[:limit]
    w, h = THUMB * 2 + 6, THUMB + 16
    rows = max(1, (len(tiles) + columns - 1) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    pen = ImageDraw.Draw(sheet)
    for k, (thumb, digit, caption) in enumerate(tiles):
        x, y = (k % columns) * w, (k // columns) * h
        tile = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
        tile.paste(Image.fromarray(thumb, "RGBA"), (0, 0), Image.fromarray(thumb, "RGBA"))
        sheet.paste(tile, (x, y))
        sheet.paste(Image.fromarray(digit).resize((THUMB, THUMB), Image.NEAREST).convert("RGB"), (x + THUMB + 2, y))
        pen.text((x + 2, y + THUMB + 2), caption, fill=(180, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return len(tiles)


def format_report(summary, non_digits, model_identity):
    lines = [f"model {model_identity['name']} ({model_identity['sha256']}): {summary['count']} pen digits per variant"]
    lines.append("| variant | accuracy | digits called 'not a digit' |")
    lines.append("| --- | --- | --- |")
    for variant, v in summary["variants"].items():
        lines.append(f"| {variant} | {v['accuracy']:.2%} | {v['digits_flagged']:.2%} |")
    lines.append(f"| mean | {summary['mean_accuracy']:.2%} | |")
    lines.append("")
    variants = list(summary["variants"])
    lines.append("| institution | count | " + " | ".join(variants) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in variants) + " |")
    for inst, entry in summary["institutions"].items():
        lines.append(f"| {inst} | {entry['count']} | " + " | ".join(f"{entry[v]:.2%}" for v in variants) + " |")
    lines.append("")
    lines.append("per digit (all variants): " + ", ".join(
        f"{d}: {a:.2%}" for d, a in summary["per_digit"].items() if a is not None))
    lines.append(format_confusion(np.array(summary["confusion"])))
    if "chars" in non_digits:
        c = non_digits["chars"]
        worst = sorted(c["per_char"].items(), key=lambda kv: kv[1])[:12]
        lines.append(f"letters and symbols flagged 'not a digit': {c['flagged']:.2%} of {c['count']} "
                     f"(least flagged: {', '.join(f'{k} {v:.0%}' for k, v in worst)})")
    if "shapes" in non_digits:
        s = non_digits["shapes"]
        lines.append(f"doodles flagged 'not a digit': {s['flagged']:.2%} of {s['count']} ("
                     + ", ".join(f"{k} {v:.0%}" for k, v in s["per_shape"].items()) + ")")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.pen_eval", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the shipped one)")
    p.add_argument("--institutions", default=",".join(pendata.HOLDOUT),
                   help="comma list of institutions to draw from ('all' for every one)")
    p.add_argument("--per-institution", type=int, default=0, help="digits per institution (0: all)")
    p.add_argument("--variants", default=",".join(canvas.VARIANTS), help="comma list of " + ", ".join(canvas.VARIANTS))
    p.add_argument("--chars", type=int, default=2000, help="non-digit letters and symbols to draw (0: none)")
    p.add_argument("--shapes", type=int, default=700, help="made-up doodles to draw (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="drawing processes")
    p.add_argument("--sheet", default="test-artifacts/pen_mistakes.png", help="contact sheet of mistakes ('' for none)")
    p.add_argument("--json", default="", help="write the numbers here as JSON")
    p.add_argument("--pen-dir", default=None, help="pen data directory (default: PENDIGITS_DIR or ../shared/pendigits)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from model.inference import load_model
    model = load_model(args.model)
    include = None if args.institutions == "all" else args.institutions.split(",")
    digits = pendata.by_institution(pendata.load("digits", args.pen_dir), include)
    if args.per_institution:
        digits = pendata.stratified(digits, args.per_institution, key=lambda s: s["inst"], seed=args.seed)
    chars = pendata.non_digits(pendata.by_institution(pendata.load("chars", args.pen_dir), include))
    if args.chars and len(chars) > args.chars:
        pick = np.random.default_rng([args.seed, 5]).choice(len(chars), args.chars, replace=False)
        chars = [chars[i] for i in sorted(pick)]
    variants = [v for v in args.variants.split(",") if v]

    started = time.perf_counter()
    result = evaluate_digits(model, digits, variants, args.seed, args.jobs)
    summary = summarize(result)
    non_digits = evaluate_non_digits(model, chars if args.chars else [], args.shapes, args.seed, args.jobs)
    print(format_report(summary, non_digits, model.identity))
    if args.sheet:
        shown = contact_sheet(result, args.sheet)
        print(f"contact sheet of {shown} mistakes: {args.sheet}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": model.identity, "institutions": sorted(set(result["institutions"].tolist())),
                       "digits": summary, "non_digits": non_digits}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
