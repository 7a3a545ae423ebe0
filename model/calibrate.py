"""Set a model's "not a digit" threshold again, without training
(python -m model.calibrate MODEL --calibrate NPZ --out OUT).

The threshold is a property of the calibration set as much as of the weights:
a bigger set, another refusal rate or a rule that holds every canvas variant
to the rate changes it while the network stays what it is. Retraining to move
one number would take half an hour; this reads the weights, scores the
calibration writers with the inference module, and writes a copy whose meta
carries the new threshold. The weights and their digest are untouched.
"""
import argparse
import os
import shlex
import sys

from . import modelfile, rejection
from .datasets import load_calibration
from .inference import Model


def not_digit_meta(logits_of, calibration_path, digit_flag_rate=rejection.DIGIT_FLAG_RATE):
    """The model file's `not_digit` meta for a network whose logits `logits_of(images)`
    gives: shared by the trainer (at the end of a run) and by `recalibrate`."""
    images, labels, variants, cal_meta = load_calibration(calibration_path)
    scores = rejection.not_digit_share(logits_of(images))
    not_digit = rejection.calibrate(scores, labels, digit_flag_rate, groups=variants)
    not_digit["calibration_set"] = {"file": os.path.basename(calibration_path), **cal_meta}
    return not_digit


def recalibrate(model_path, calibration_path, out_path, digit_flag_rate=rejection.DIGIT_FLAG_RATE, command=None):
    """Writes the model with a threshold from `calibration_path`; returns the new `not_digit` meta.

    `command`, the command line that asked for it, is stored with the threshold
    so that the file says how to set it again."""
    meta, params = modelfile.load(model_path)
    if "not_digit" not in meta:
        raise SystemExit(f"{model_path}: this model has no 'not a digit' output to calibrate")
    not_digit = not_digit_meta(Model(meta, params).logits, calibration_path, digit_flag_rate)
    if command is not None:
        not_digit["command"] = command
    modelfile.save(out_path, {**meta, "not_digit": not_digit}, params)
    return not_digit


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m model.calibrate", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("model", help="model file (.npz) with a not-a-digit output")
    p.add_argument("--calibrate", required=True, metavar="NPZ",
                   help="held-out digits and non-digits (make pen-data: runs/pen_calibrate.npz)")
    p.add_argument("--digit-flag-rate", type=float, default=rejection.DIGIT_FLAG_RATE,
                   help="share of the calibration digits allowed to be called 'not a digit', in each canvas variant")
    p.add_argument("--out", required=True, help="where to write the recalibrated model (may be the input)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    old = modelfile.load(args.model)[0].get("not_digit", {}).get("threshold")
    result = recalibrate(args.model, args.calibrate, args.out, args.digit_flag_rate,
                         command=f"{p.prog} {shlex.join(argv)}")
    by_variant = result.get("digits_flagged_by_variant") or {}
    print(f"threshold {old} -> {result['threshold']:.4f}: on the calibration writers "
          f"{result['digits_flagged']:.2%} of digits ({', '.join(f'{k} {v:.2%}' for k, v in by_variant.items())}) "
          f"and {(result['non_digits_flagged'] or 0):.2%} of non-digits flagged; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
